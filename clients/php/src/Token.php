<?php

declare(strict_types=1);

namespace ProsodyHmacToken;

/**
 * Mints (and, for tests and tools, verifies) prosody-auth-hmac tokens:
 *
 *     OTP ‖ NONCE ␠ base64(HMAC-SHA256(token_secret, OTP ‖ NONCE ‖ bare-JID))
 *
 * OTP is RFC 6238 TOTP (HMAC-SHA1) of integer UTC seconds, keyed with the base32-decoded otp_seed;
 * NONCE is exactly nonce_digits digits from the CSPRNG; the JID is the one Prosody checks
 * (ASCII lower-cased; a non-ASCII username only when passed already prepared).
 *
 * Options (all optional; null means the default):
 *  - 'now'          int, UTC unix seconds (default time())
 *  - 'digits'       int, OTP digits, 6–8 (default 8)             — Prosody's otp_digits
 *  - 'step'         int, OTP step in seconds, 1–86400 (default 30) — otp_step
 *  - 'nonce_digits' int, 16–64 (default 32)                       — token_nonce_digits
 *  - 'prepared'     bool, the JID is already exactly Prosody's form: sign it unchanged (default false)
 *  - 'nonce'        string, mint only, FOR TEST VECTORS ONLY: a fixed nonce instead of a random one
 *  - 'skew'         int, verify only, steps either side accepted, 0–10 (default 1) — otp_skew
 *  - 'host'         string, verify only, the Prosody host the JID must belong to (default none)
 *
 * prebind() opens a chat session for converse.js's prebind_url: it logs in over BOSH with SASL-HMAC,
 * checks that Prosody proves it holds the token secret and binds a resource (docs/prebind.md).
 *
 * signout() sends Prosody the sign-out request of docs/signout.md (signoutRequest() builds it), on
 * logout, account lock and password reset: Prosody ends the user's sessions and refuses the tokens
 * minted before it.
 *
 * Requires 64-bit PHP (the TOTP counter and the sign-out time are packed as 64-bit integers).
 */
final class Token
{
    public const DEFAULT_DIGITS = 8;
    public const DEFAULT_STEP = 30;
    public const DEFAULT_NONCE_DIGITS = 32;
    public const DEFAULT_SKEW = 1;

    /** Longest token verify() looks at, in bytes. */
    public const MAX_TOKEN_BYTES = 1024;

    /** Longest localpart (and domain) Prosody accepts, in bytes. */
    private const MAX_PART_BYTES = 1023;

    /** Seconds signout() waits to connect and for each read of the answer, by default. */
    public const SIGNOUT_TIMEOUT = 5.0;

    private const SIGNOUT_NONCE_DIGITS = 32;
    // Domain separators: the derived key's message starts with a zero octet, so the key is never a
    // token's MAC (whose message starts with a digit), and the request's message is labelled too.
    private const SIGNOUT_KEY_LABEL = "\x00prosody-auth-hmac signout key v1";
    private const SIGNOUT_LABEL = "prosody-auth-hmac signout v1\x00";
    /** RFC 3454 table B.1: what nodeprep maps to nothing (a localpart holding one is not nodeprep'd). */
    private const MAPPED_TO_NOTHING = '\x{00AD}\x{034F}\x{1806}\x{180B}-\x{180D}\x{200B}-\x{200D}\x{2060}\x{FE00}-\x{FE0F}\x{FEFF}';
    /** RFC 3454 table D.1: the right-to-left characters (Unicode 3.2), for a PCRE class. */
    private const RTL = '\x{05BE}\x{05C0}\x{05C3}\x{05D0}-\x{05EA}\x{05F0}-\x{05F4}\x{061B}\x{061F}\x{0621}-\x{063A}'
        . '\x{0640}-\x{064A}\x{066D}-\x{066F}\x{0671}-\x{06D5}\x{06DD}\x{06E5}\x{06E6}\x{06FA}-\x{06FE}\x{0700}-\x{070D}'
        . '\x{0710}\x{0712}-\x{072C}\x{0780}-\x{07A5}\x{07B1}\x{200F}\x{FB1D}\x{FB1F}-\x{FB28}\x{FB2A}-\x{FB36}'
        . '\x{FB38}-\x{FB3C}\x{FB3E}\x{FB40}\x{FB41}\x{FB43}\x{FB44}\x{FB46}-\x{FBB1}\x{FBD3}-\x{FD3D}\x{FD50}-\x{FD8F}'
        . '\x{FD92}-\x{FDC7}\x{FDF0}-\x{FDFC}\x{FE70}-\x{FE74}\x{FE76}-\x{FEFC}';
    /** What is read of Prosody's answer: its status is all it says. */
    private const SIGNOUT_MAX_ANSWER = 4096;

    private const MINT_OPTIONS = ['now', 'digits', 'step', 'nonce_digits', 'prepared', 'nonce'];
    private const SIGNOUT_REQUEST_OPTIONS = ['now', 'nonce'];
    private const VERIFY_OPTIONS = ['now', 'digits', 'step', 'nonce_digits', 'prepared', 'skew', 'host'];

    /** [min, max] of the integer options: the plugin's ranges. */
    private const RANGES = [
        'digits' => [6, 8],
        'step' => [1, 86400],
        'nonce_digits' => [16, 64],
        'skew' => [0, 10],
    ];

    private const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
    private const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    private const LOWER = 'abcdefghijklmnopqrstuvwxyz';

    /** Characters nodeprep (or the JID syntax) refuses in an ASCII localpart, besides control characters. */
    private const PROHIBITED_LOCAL = " \"&'/:<>@";

    private function __construct()
    {
    }

    /**
     * Mints a token for $jid.
     *
     * @param string $jid         the bare JID the user logs in as, e.g. "alice@example.org" (ASCII is
     *                            lower-cased; a non-ASCII username needs 'prepared' => true)
     * @param string $tokenSecret the plugin's token_secret (its bytes are the HMAC key)
     * @param string $otpSeed     the plugin's otp_seed (base32, case-insensitive, padding optional)
     * @param array{now?: ?int, digits?: ?int, step?: ?int, nonce_digits?: ?int, prepared?: ?bool, nonce?: ?string} $options
     *                            see the class comment; 'nonce' is for test vectors only
     *
     * @return string the token: the password to log in with, once, within the OTP window
     *
     * @throws TokenError        kind "settings", "jid" or "nonce" (checked in that order)
     * @throws \RuntimeException on 32-bit PHP
     * @throws \Exception        if no CSPRNG is available (from random_int)
     */
    public static function mint(
        string $jid,
        #[\SensitiveParameter] string $tokenSecret,
        #[\SensitiveParameter] string $otpSeed,
        array $options = [],
    ): string {
        return self::build($jid, $tokenSecret, $otpSeed, $options)[1];
    }

    /**
     * The credentials_url response body: the signed JID and a fresh token.
     *
     * Serialise it with json_encode() and answer with Cache-Control: no-store.
     *
     * @param string $jid         as for mint()
     * @param string $tokenSecret as for mint()
     * @param string $otpSeed     as for mint()
     * @param array{now?: ?int, digits?: ?int, step?: ?int, nonce_digits?: ?int, prepared?: ?bool, nonce?: ?string} $options
     *                            as for mint()
     *
     * @return array{jid: string, password: string}
     *
     * @throws TokenError        as mint()
     * @throws \RuntimeException on 32-bit PHP
     * @throws \Exception        if no CSPRNG is available (from random_int)
     */
    public static function credentials(
        string $jid,
        #[\SensitiveParameter] string $tokenSecret,
        #[\SensitiveParameter] string $otpSeed,
        array $options = [],
    ): array {
        [$signed, $token] = self::build($jid, $tokenSecret, $otpSeed, $options);
        return ['jid' => $signed, 'password' => $token];
    }

    /**
     * The JID a token for $jid is signed for: the username and domain lower-cased (ASCII), or
     * $jid unchanged when $prepared.
     *
     * @param string $jid      the bare JID, "user@host"
     * @param bool   $prepared true if $jid is already exactly Prosody's form (e.g. a non-ASCII
     *                         username as `hmac-token jid NAME@HOST` prints it); it is then only
     *                         checked for structural errors, never changed
     *
     * @return string the bare JID that is signed
     *
     * @throws TokenError kind "jid": not a bare JID Prosody accepts, or one this library cannot prepare
     */
    public static function signedJid(string $jid, bool $prepared = false): string
    {
        return self::prepare($jid, $prepared);
    }

    /**
     * Checks a token as the plugin would, without a replay cache.
     *
     * Stateless: a token verifies as often as it is passed in. Only the server, which remembers
     * tokens, refuses a replay. Use this in tests and tools, not as a login check.
     *
     * @param string                $token        the token to check
     * @param string                $jid          the JID the client logs in as (prepared as signedJid() does)
     * @param string|list<string>   $tokenSecrets one secret or the list of secrets that verify (rotation)
     * @param string                $otpSeed      the plugin's otp_seed
     * @param array{now?: ?int, digits?: ?int, step?: ?int, nonce_digits?: ?int, prepared?: ?bool, skew?: ?int, host?: ?string} $options
     *                                            see the class comment
     *
     * @return string|null null if valid, else the reason: "malformed" (wrong shape or length, or a
     *                     JID signedJid() refuses), "wrong-host", "bad-signature" or "expired"
     *
     * @throws TokenError        kind "settings": an option out of range or mistyped, no secret,
     *                           an empty secret, an otp_seed that is not base32
     * @throws \RuntimeException on 32-bit PHP
     */
    public static function verify(
        string $token,
        string $jid,
        #[\SensitiveParameter] string|array $tokenSecrets,
        #[\SensitiveParameter] string $otpSeed,
        array $options = [],
    ): ?string {
        $o = self::options($options, self::VERIFY_OPTIONS);
        $secrets = is_string($tokenSecrets) ? [$tokenSecrets] : array_values($tokenSecrets);
        if ($secrets === []) {
            throw new TokenError(TokenError::SETTINGS, 'token_secrets is an empty list: give at least one secret');
        }
        foreach ($secrets as $secret) {
            if (!is_string($secret)) {
                throw new TokenError(TokenError::SETTINGS, 'token_secrets must be a string or a list of strings');
            }
            self::checkSecret($secret);
        }
        $key = self::decodeSeed($otpSeed);
        $host = null;
        if ($o['host'] !== null) {
            $host = self::asciiLower($o['host']);
            if (!self::isDomain($host)) {
                throw new TokenError(TokenError::SETTINGS, "option 'host' must be a domain name such as example.org");
            }
        }
        $digits = $o['digits'];
        $public = $digits + $o['nonce_digits'];

        if (strlen($token) > self::MAX_TOKEN_BYTES
            || preg_match('/\A[0-9]{' . $public . '} [A-Za-z0-9+\/]{43}=\z/', $token) !== 1) {
            return 'malformed';
        }
        $b64 = substr($token, $public + 1);
        $mac = base64_decode($b64, true);
        if ($mac === false || strlen($mac) !== 32 || base64_encode($mac) !== $b64) {
            return 'malformed'; // non-canonical: trailing bits set
        }
        try {
            $signed = self::prepare($jid, $o['prepared']);
        } catch (TokenError) {
            return 'malformed';
        }
        if ($host !== null) {
            $domain = self::asciiLower(substr($signed, strpos($signed, '@') + 1));
            if ($domain !== $host) {
                return 'wrong-host';
            }
        }

        $message = substr($token, 0, $public) . $signed;
        $signatureOk = false;
        foreach ($secrets as $secret) { // every secret, constant-time compare, no early exit
            $signatureOk = hash_equals(hash_hmac('sha256', $message, $secret, true), $mac) || $signatureOk;
        }
        if (!$signatureOk) {
            return 'bad-signature';
        }

        $otp = substr($token, 0, $digits);
        $counter = intdiv($o['now'], $o['step']);
        $skew = $o['skew'];
        $low = max(0, $counter - $skew);
        $high = $counter > PHP_INT_MAX - $skew ? PHP_INT_MAX : $counter + $skew;
        $fresh = false;
        for ($i = 0; $i <= $high - $low; $i++) { // every step of the window, constant-time compare
            $fresh = hash_equals(self::otp($key, $low + $i, $digits), $otp) || $fresh;
        }
        return $fresh ? null : 'expired';
    }

    /**
     * The sign-out request for $jid: one line, "v1 TIME NONCE JID MAC" (docs/signout.md).
     *
     * signout() builds and sends it; this is for a web app that sends it its own way. It is valid
     * for 60 s and once: do not log it.
     *
     * @param string $jid         the bare JID exactly as Prosody names the account: the localpart
     *                            nodeprep'd (lower case; `hmac-token jid NAME@HOST` prints it), the
     *                            host the VirtualHost's name. Unlike mint(), nothing is lower-cased
     *                            for you: an upper-case letter in the localpart, a '/', whitespace,
     *                            a character nodeprep removes (a soft hyphen) or refuses (a control
     *                            or private-use character, right-to-left text mixed with
     *                            left-to-right), a part over 1023 bytes, or what
     *                            signedJid($jid, true) refuses is refused (nodeprep itself is not
     *                            reimplemented: what else it would change, Prosody refuses)
     * @param string $tokenSecret the plugin's token_secret (the key is derived from its bytes)
     * @param array{now?: ?int, nonce?: ?string} $options 'now': UTC unix seconds, at least 1 (default
     *                            time()); 'nonce': FOR TEST VECTORS ONLY, 32 ASCII digits instead of
     *                            32 from the CSPRNG (Prosody refuses a nonce it accepted within 60 s)
     *
     * @return string the request line
     *
     * @throws TokenError        kind "settings", "jid" or "nonce" (checked in that order)
     * @throws \RuntimeException on 32-bit PHP
     * @throws \Exception        if no CSPRNG is available (from random_int)
     */
    public static function signoutRequest(
        string $jid,
        #[\SensitiveParameter] string $tokenSecret,
        array $options = [],
    ): string {
        $o = self::options($options, self::SIGNOUT_REQUEST_OPTIONS);
        if ($o['now'] < 1) {
            throw new TokenError(TokenError::SETTINGS, "option 'now' must be an integer of at least 1 (UTC unix seconds)");
        }
        self::checkSecret($tokenSecret);
        $signed = self::signoutJid($jid);
        $nonce = self::nonce($o['nonce'], self::SIGNOUT_NONCE_DIGITS);
        $key = hash_hmac('sha256', self::SIGNOUT_KEY_LABEL, $tokenSecret, true);
        $message = self::SIGNOUT_LABEL . pack('J', $o['now']) . $nonce . pack('n', strlen($signed)) . $signed;
        return 'v1 ' . $o['now'] . ' ' . $nonce . ' ' . $signed . ' ' . base64_encode(hash_hmac('sha256', $message, $key, true));
    }

    /**
     * The JID as Prosody names the account: never prepared for the caller, so that it names exactly
     * that account. What nodeprep would change or refuse in the localpart is refused, as far as this
     * library can tell without nodeprep's tables; Prosody refuses the rest as malformed.
     */
    private static function signoutJid(string $jid): string
    {
        $signed = self::prepare($jid, true);
        $local = substr($signed, 0, (int) strpos($signed, '@'));
        if (preg_match('/[\p{Lu}\p{Lt}]/u', $local) === 1) { // nodeprep case-folds them
            throw new TokenError(
                TokenError::JID,
                'the username has upper-case letters: pass the JID as Prosody nodepreps it'
                . ' (lower case; hmac-token jid NAME@HOST prints it)',
            );
        }
        if (preg_match('/[\s\p{Z}\x{85}]/u', $local) === 1) {
            throw new TokenError(TokenError::JID, 'the username contains whitespace');
        }
        if (preg_match('/[' . self::MAPPED_TO_NOTHING . '\p{Cc}\p{Co}]/u', $local) === 1) {
            throw new TokenError(TokenError::JID, 'the username contains a character nodeprep removes or refuses');
        }
        // RFC 3454 section 6: right-to-left text only, starting and ending with a right-to-left
        // character; table D.2's left-to-right characters approximated as letters not right-to-left
        $rtl = self::RTL;
        if (preg_match("/[$rtl]/u", $local) === 1
            && (preg_match("/(?![$rtl])\\p{L}/u", $local) === 1 || preg_match("/\\A[$rtl](?:.*[$rtl])?\\z/su", $local) !== 1)) {
            throw new TokenError(TokenError::JID, 'the username mixes right-to-left and left-to-right text, which nodeprep refuses');
        }
        return $signed;
    }

    /**
     * Signs $jid out of the chat: POSTs signoutRequest() as text/plain to Prosody's endpoint.
     *
     * Returns when Prosody accepted it: every session of the user has ended and every token minted
     * before 'now' (to its OTP step) is refused. Call it on logout, account lock and password reset.
     * It is not retried here: a new call makes a new request (a fresh nonce). Uses PHP's http://
     * stream wrapper (allow_url_fopen): no proxy, no redirect; an https:// certificate is verified.
     *
     * @param string $url         Prosody's endpoint, e.g. "http://127.0.0.1:5280/auth_hmac/signout"
     * @param string $jid         as for signoutRequest()
     * @param string $tokenSecret the plugin's token_secret
     * @param array{now?: ?int, timeout?: int|float|null, host?: ?string} $options 'now' as for
     *                            signoutRequest(); 'timeout': seconds to connect and for each read,
     *                            over 0 and at most 600 (default 5); 'host': the Host header, by
     *                            default the JID's domain: the VirtualHost whose user this is, by
     *                            which Prosody routes the request (http://127.0.0.1:5280/... works
     *                            so without http_default_host); pass the name a reverse proxy in
     *                            between routes by
     *
     * @throws TokenError        kind "settings" or "jid": nothing was sent
     * @throws SignoutError      Prosody did not accept it: kind "refused", "http" or "network"
     * @throws \RuntimeException on 32-bit PHP
     * @throws \Exception        if no CSPRNG is available (from random_int)
     */
    public static function signout(
        string $url,
        string $jid,
        #[\SensitiveParameter] string $tokenSecret,
        array $options = [],
    ): void {
        foreach (array_keys($options) as $name) {
            if (!in_array($name, ['now', 'timeout', 'host'], true)) {
                throw new TokenError(TokenError::SETTINGS, sprintf("unknown option '%s' (known: now, timeout, host)", (string) $name));
            }
        }
        $host = $options['host'] ?? null;
        if ($host !== null && (!is_string($host) || preg_match('/\A[!-~]+\z/', $host) !== 1)) {
            throw new TokenError(TokenError::SETTINGS, "option 'host' must be a host name (printable ASCII, no space)");
        }
        $timeout = $options['timeout'] ?? self::SIGNOUT_TIMEOUT;
        if (!(is_int($timeout) || is_float($timeout)) || !is_finite((float) $timeout) || $timeout <= 0 || $timeout > 600) {
            throw new TokenError(TokenError::SETTINGS, "option 'timeout' must be a number of seconds, over 0 and at most 600");
        }
        $where = self::signoutTarget($url);
        $line = self::signoutRequest($jid, $tokenSecret, ['now' => $options['now'] ?? null]);
        $host ??= substr((string) strrchr(explode(' ', $line)[3], '@'), 1); // the JID's domain
        self::post($url, $where, $line, (float) $timeout, $host);
    }

    /**
     * Opens a BOSH session logged in as $jid with $token, for converse.js's prebind_url
     * (docs/prebind.md). It creates the session, logs in with SASL-HMAC (never anything else: the
     * token's secret half is never sent), checks Prosody's proof that it holds the token secret,
     * binds a resource and checks that the bound JID is $jid's. Answer the browser's prebind_url
     * request with the result as JSON, with Cache-Control: no-store; the browser must attach within
     * Prosody's bosh_max_inactivity (60 s by default), so open a session for each request, never
     * from a cache.
     *
     * A token is sent once: mint one per call (Token::prebind($url, $jid, Token::mint($jid, ...))).
     * One tried before in the same request (or CLI run) is refused before anything is sent; PHP
     * keeps nothing between requests, so never pass a token that was used anywhere else.
     *
     * @param string $boshUrl Prosody's BOSH endpoint itself (http://127.0.0.1:5280/http-bind, a
     *                        loopback host, or https:// with a verified certificate), not the proxy
     *                        browsers reach; no proxy, no redirect
     * @param string $jid     the bare JID the token was minted for (as for mint())
     * @param string $token   a token from mint()
     * @param array{timeout?: int|float|null, resource?: ?string, prepared?: ?bool, transport?: ?callable, insecure_http?: ?bool} $options
     *                        'timeout': seconds the whole login may take, over 0 and at most 600
     *                        (default 10); 'resource': the resource to ask for (by default Prosody
     *                        picks one); 'prepared' as for mint(); 'insecure_http': allow an
     *                        http:// URL whose host is not loopback (127.0.0.0/8, ::1, localhost),
     *                        refused by default as nothing authenticates the BOSH session on the
     *                        way; 'transport': FOR TESTS, or another HTTP client: fn(string $body,
     *                        float $secondsLeft): [int $status, string $answer], throwing when
     *                        there is no answer
     *
     * @return array{jid: string, sid: string, rid: int} the bound full JID, the session id, the next request id
     *
     * @throws TokenError   kind "settings", "jid" or "token": nothing was sent
     * @throws PrebindError kind "refused" (with `condition`), "unproven" or "transport"
     */
    public static function prebind(
        string $boshUrl,
        string $jid,
        #[\SensitiveParameter] string $token,
        array $options = [],
    ): array {
        foreach (array_keys($options) as $name) {
            if (!in_array($name, ['timeout', 'resource', 'prepared', 'transport', 'insecure_http'], true)) {
                throw new TokenError(TokenError::SETTINGS, 'an unknown option was given (known: timeout, resource, prepared, transport, insecure_http)');
            }
        }
        $timeout = $options['timeout'] ?? 10;
        if (!(is_int($timeout) || is_float($timeout)) || !is_finite((float) $timeout) || $timeout <= 0 || $timeout > 600) {
            throw new TokenError(TokenError::SETTINGS, "option 'timeout' must be a number of seconds, over 0 and at most 600");
        }
        $prepared = $options['prepared'] ?? false;
        if (!is_bool($prepared)) {
            throw new TokenError(TokenError::SETTINGS, "option 'prepared' must be a bool");
        }
        $bare = self::prepare($jid, $prepared);
        $resource = $options['resource'] ?? null;
        if ($resource !== null && (!is_string($resource) || $resource === '' || preg_match('/[\x00-\x1f\x7f]/', $resource) === 1
            || preg_match('//u', $resource) !== 1)) {
            throw new TokenError(TokenError::SETTINGS, "option 'resource' must be a non-empty UTF-8 string without control characters");
        }
        $insecureHttp = $options['insecure_http'] ?? false;
        if (!is_bool($insecureHttp)) {
            throw new TokenError(TokenError::SETTINGS, "option 'insecure_http' must be a bool");
        }
        $target = self::prebindTarget($boshUrl);
        // nothing authenticates the BOSH session itself (the proof covers the SASL exchange, not the
        // sid or the bind): on a network path an attacker could relay the login and hand back another
        // session
        if ($target['scheme'] === 'http' && !self::isLoopback($target['host']) && !$insecureHttp) {
            throw new TokenError(
                TokenError::SETTINGS,
                "an http:// URL must name a loopback host (127.0.0.0/8, ::1, localhost): use https://, or 'insecure_http' => true",
            );
        }
        $transport = $options['transport'] ?? null;
        if ($transport === null) {
            $transport = Prebind::http($target);
        } elseif (!is_callable($transport)) {
            throw new TokenError(TokenError::SETTINGS, "option 'transport' must be callable");
        }
        if (preg_match('#\A([0-9]{22,72}) ([A-Za-z0-9+/]{43}=)\z#', $token, $m) !== 1
            || ($s = base64_decode($m[2], true)) === false || strlen($s) !== 32 || base64_encode($s) !== $m[2]) {
            throw new TokenError(TokenError::TOKEN, 'not a token (OTP and nonce digits, a space, 44 characters of base64)');
        }
        Prebind::once($m[1]);
        return Prebind::run($transport, (float) $timeout, $bare, $m[1], $s, $resource);
    }

    /**
     * The parts of an http:// or https:// URL a request needs.
     *
     * @return array{scheme: string, host: string, port: int, path: string}
     */
    private static function prebindTarget(string $url): array
    {
        self::signoutTarget($url);
        $parts = (array) parse_url($url);
        $scheme = strtolower((string) $parts['scheme']);
        $host = strtolower((string) $parts['host']);
        $path = (string) ($parts['path'] ?? '/');
        $path = ($path === '' ? '/' : $path) . (isset($parts['query']) ? '?' . $parts['query'] : '');
        if (preg_match('/\A[!-~]+\z/', $host . $path) !== 1 || isset($parts['user']) || isset($parts['pass'])) {
            throw new TokenError(TokenError::SETTINGS, 'the URL must be printable ASCII, without user or password');
        }
        return ['scheme' => $scheme, 'host' => $host, 'port' => (int) ($parts['port'] ?? ($scheme === 'https' ? 443 : 80)), 'path' => $path];
    }

    /** Whether a URL's host is a loopback address: 127.0.0.0/8, ::1 or localhost. */
    private static function isLoopback(string $host): bool
    {
        if ($host === 'localhost' || $host === '[::1]') {
            return true;
        }
        return preg_match('/\A127\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(?1)){2}\z/', $host) === 1;
    }

    /** "host:port" of an http:// or https:// URL. */
    private static function signoutTarget(string $url): string
    {
        $parts = parse_url($url);
        $scheme = strtolower((string) ($parts['scheme'] ?? ''));
        if ($parts === false || !in_array($scheme, ['http', 'https'], true) || ($parts['host'] ?? '') === '') {
            throw new TokenError(TokenError::SETTINGS, 'the URL must be an http:// or https:// URL with a host');
        }
        return $parts['host'] . ':' . ($parts['port'] ?? ($scheme === 'https' ? 443 : 80));
    }

    /** POSTs $body; returns on 200, else throws SignoutError. */
    private static function post(string $url, string $where, #[\SensitiveParameter] string $body, float $timeout, string $host): void
    {
        if (!filter_var(ini_get('allow_url_fopen'), FILTER_VALIDATE_BOOLEAN)) {
            throw new SignoutError(SignoutError::NETWORK, 'PHP cannot send the sign-out request: allow_url_fopen is off');
        }
        $context = stream_context_create([
            'http' => [
                'method' => 'POST',
                'header' => "Host: $host\r\nContent-Type: text/plain\r\n",
                'content' => $body,
                'timeout' => $timeout,
                'follow_location' => 0,
                'ignore_errors' => true, // a 403 is an answer to read, not a failure to open
            ],
            'ssl' => ['verify_peer' => true, 'verify_peer_name' => true],
        ]);
        $warning = null;
        set_error_handler(static function (int $no, string $text) use (&$warning): bool {
            $warning = $text; // names the URL and the failure, never the body
            return true;
        });
        $started = hrtime(true);
        try {
            $stream = fopen($url, 'rb', false, $context);
        } finally {
            restore_error_handler();
        }
        if ($stream === false) {
            $reason = (hrtime(true) - $started) / 1e9 >= $timeout
                ? sprintf('timed out after %g s', $timeout)
                : preg_replace('/^.*?: /', '', (string) $warning);
            throw new SignoutError(SignoutError::NETWORK, "the sign-out request to $where got no answer: $reason");
        }
        try {
            $headers = stream_get_meta_data($stream)['wrapper_data'] ?? [];
            stream_get_contents($stream, self::SIGNOUT_MAX_ANSWER);
        } finally {
            fclose($stream);
        }
        $status = 0;
        foreach (is_array($headers) ? $headers : [] as $line) {
            if (is_string($line) && preg_match('#\AHTTP/\S+\s+(\d{3})#', $line, $m) === 1) {
                $status = (int) $m[1]; // the last status line: the final answer
            }
        }
        if ($status === 200) {
            return;
        }
        if ($status === 403) {
            throw new SignoutError(
                SignoutError::REFUSED,
                "Prosody at $where refused the sign-out request (403); its log says why"
                . " (stale: check this machine's clock; bad-signature: another token_secret)",
                403,
            );
        }
        $why = $status >= 500 && $status < 600
            ? 'Prosody could not complete it (its log says why): call signout again'
            : "is the URL the auth_hmac/signout path, the Host the user's VirtualHost, and token_signout on?";
        throw new SignoutError(SignoutError::HTTP, "the sign-out request to $where got HTTP $status: $why", $status);
    }

    /**
     * @return array{0: string, 1: string} the signed JID and the token
     */
    private static function build(
        string $jid,
        #[\SensitiveParameter] string $tokenSecret,
        #[\SensitiveParameter] string $otpSeed,
        array $options,
    ): array {
        $o = self::options($options, self::MINT_OPTIONS);
        self::checkSecret($tokenSecret);
        $key = self::decodeSeed($otpSeed);
        $signed = self::prepare($jid, $o['prepared']);
        $nonce = self::nonce($o['nonce'], $o['nonce_digits'], ' (nonce_digits)');
        $public = self::otp($key, intdiv($o['now'], $o['step']), $o['digits']) . $nonce;
        $mac = hash_hmac('sha256', $public . $signed, $tokenSecret, true);
        return [$signed, $public . ' ' . base64_encode($mac)];
    }

    /**
     * Checks the option keys, types and ranges and fills in the defaults.
     *
     * @param array<mixed>  $options
     * @param list<string>  $known
     *
     * @return array{now: int, digits: int, step: int, nonce_digits: int, prepared: bool, nonce: ?string, skew: int, host: ?string}
     */
    private static function options(array $options, array $known): array
    {
        if (PHP_INT_SIZE < 8) {
            throw new \RuntimeException('ProsodyHmacToken\\Token needs 64-bit PHP');
        }
        foreach (array_keys($options) as $name) {
            if (!in_array($name, $known, true)) {
                throw new TokenError(
                    TokenError::SETTINGS,
                    sprintf("unknown option '%s' (known: %s)", (string) $name, implode(', ', $known)),
                );
            }
        }
        $o = [
            'now' => $options['now'] ?? null,
            'digits' => $options['digits'] ?? self::DEFAULT_DIGITS,
            'step' => $options['step'] ?? self::DEFAULT_STEP,
            'nonce_digits' => $options['nonce_digits'] ?? self::DEFAULT_NONCE_DIGITS,
            'prepared' => $options['prepared'] ?? false,
            'nonce' => $options['nonce'] ?? null,
            'skew' => $options['skew'] ?? self::DEFAULT_SKEW,
            'host' => $options['host'] ?? null,
        ];
        if ($o['now'] === null) {
            $o['now'] = time();
        } elseif (!is_int($o['now']) || $o['now'] < 0) {
            throw new TokenError(TokenError::SETTINGS, "option 'now' must be a non-negative integer (UTC unix seconds)");
        }
        foreach (self::RANGES as $name => [$min, $max]) {
            $v = $o[$name];
            if (!is_int($v) || $v < $min || $v > $max) {
                throw new TokenError(TokenError::SETTINGS, "option '$name' must be an integer from $min to $max");
            }
        }
        if (!is_bool($o['prepared'])) {
            throw new TokenError(TokenError::SETTINGS, "option 'prepared' must be a boolean");
        }
        if ($o['nonce'] !== null && !is_string($o['nonce'])) {
            throw new TokenError(TokenError::NONCE, "option 'nonce' must be a string of digits");
        }
        if ($o['host'] !== null && !is_string($o['host'])) {
            throw new TokenError(TokenError::SETTINGS, "option 'host' must be a string");
        }
        return $o;
    }

    private static function checkSecret(#[\SensitiveParameter] string $secret): void
    {
        if ($secret === '') {
            throw new TokenError(TokenError::SETTINGS, 'the token secret is empty (is the environment variable set?)');
        }
    }

    /**
     * Base32 (RFC 4648) as pyotp and the plugin read it: case-insensitive, '=' padding optional,
     * trailing bits not checked.
     */
    private static function decodeSeed(#[\SensitiveParameter] string $seed): string
    {
        $s = strtr(rtrim($seed, '='), self::LOWER, self::UPPER);
        $len = strlen($s);
        if ($len === 0) {
            throw new TokenError(TokenError::SETTINGS, 'the otp_seed is empty (is the environment variable set?)');
        }
        if (strspn($s, self::BASE32) !== $len || in_array($len % 8, [1, 3, 6], true)) {
            throw new TokenError(
                TokenError::SETTINGS,
                'the otp_seed is not valid base32 (RFC 4648 alphabet A-Z and 2-7, padding optional)',
            );
        }
        $out = '';
        $buffer = 0;
        $bits = 0;
        for ($i = 0; $i < $len; $i++) {
            $c = ord($s[$i]);
            $buffer = ($buffer << 5) | ($c >= 65 ? $c - 65 : $c - 24); // 'A'-'Z' → 0-25, '2'-'7' → 26-31
            $bits += 5;
            if ($bits >= 8) {
                $bits -= 8;
                $out .= chr(($buffer >> $bits) & 0xff);
            }
            $buffer &= (1 << $bits) - 1;
        }
        return $out;
    }

    /** RFC 6238 / RFC 4226 HOTP of $counter, zero-padded to $digits. */
    private static function otp(#[\SensitiveParameter] string $key, int $counter, int $digits): string
    {
        $h = hash_hmac('sha1', pack('J', $counter), $key, true);
        $o = ord($h[19]) & 0x0f;
        $bin = ((ord($h[$o]) & 0x7f) << 24) | (ord($h[$o + 1]) << 16) | (ord($h[$o + 2]) << 8) | ord($h[$o + 3]);
        return str_pad((string) ($bin % (10 ** $digits)), $digits, '0', STR_PAD_LEFT);
    }

    private static function prepare(string $jid, bool $prepared): string
    {
        if ($jid === '') {
            throw new TokenError(TokenError::JID, 'the JID is empty: pass the bare JID user@host');
        }
        if (str_contains($jid, '/')) {
            throw new TokenError(TokenError::JID, "a '/' is not allowed: pass the bare JID user@host, without a resource");
        }
        $at = strpos($jid, '@');
        if ($at === false) {
            throw new TokenError(TokenError::JID, "the JID has no '@': pass the bare JID user@host");
        }
        if (strpos($jid, '@', $at + 1) !== false) {
            throw new TokenError(TokenError::JID, "the JID has more than one '@'");
        }
        $local = substr($jid, 0, $at);
        $domain = substr($jid, $at + 1);
        if ($local === '') {
            throw new TokenError(TokenError::JID, 'the JID has an empty username (localpart)');
        }
        if ($domain === '') {
            throw new TokenError(TokenError::JID, 'the JID has an empty domain');
        }
        if (strlen($local) > self::MAX_PART_BYTES) {
            throw new TokenError(TokenError::JID, 'the username is longer than 1023 bytes');
        }
        if (strcspn($local, self::PROHIBITED_LOCAL) !== strlen($local) || preg_match('/[\x00-\x1f\x7f]/', $local) === 1) {
            throw new TokenError(
                TokenError::JID,
                'the username contains a character Prosody refuses (space " & \' / : < > @ or a control character)',
            );
        }
        if (preg_match('/[\x80-\xff]/', $local) === 1) {
            if (!$prepared) {
                throw new TokenError(
                    TokenError::JID,
                    "the username is not ASCII: pass 'prepared' => true with the JID as Prosody nodepreps it"
                    . ' (hmac-token jid NAME@HOST prints it)',
                );
            }
            if (preg_match('//u', $local) !== 1) {
                throw new TokenError(TokenError::JID, 'the prepared username is not valid UTF-8');
            }
        }
        // a prepared JID's domain is Prosody's form of the host already: lower-case ASCII labels
        $lowerDomain = $prepared ? $domain : self::asciiLower($domain);
        if (!self::isDomain($lowerDomain)) {
            throw new TokenError(
                TokenError::JID,
                "the domain must be dot-separated labels of ASCII letters, digits and '-'"
                . ' (no empty label, no trailing dot, no space; non-ASCII domains are not supported)',
            );
        }
        return $prepared ? $jid : self::asciiLower($local) . '@' . $lowerDomain;
    }

    private static function isDomain(string $lowerDomain): bool
    {
        return strlen($lowerDomain) <= self::MAX_PART_BYTES
            && preg_match('/\A[a-z0-9-]+(?:\.[a-z0-9-]+)*\z/', $lowerDomain) === 1;
    }

    /** Lower-cases A-Z only, whatever the locale (strtolower() is locale-dependent before PHP 8.2). */
    private static function asciiLower(string $s): string
    {
        return strtr($s, self::UPPER, self::LOWER);
    }

    /**
     * `$n` decimal digits from the CSPRNG, or `$given` when it is exactly `$n` ASCII digits (test
     * vectors); `$hint` ends the error's message.
     */
    private static function nonce(?string $given, int $n, string $hint = ''): string
    {
        if ($given === null) {
            $nonce = '';
            for ($i = 0; $i < $n; $i++) {
                $nonce .= (string) random_int(0, 9);
            }
            return $nonce;
        }
        if (strlen($given) !== $n || strspn($given, '0123456789') !== $n) {
            throw new TokenError(TokenError::NONCE, "the nonce must be exactly $n ASCII digits$hint");
        }
        return $given;
    }
}
