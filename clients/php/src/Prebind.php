<?php

declare(strict_types=1);

namespace ProsodyHmacToken;

/**
 * The client's side of a prebind (docs/prebind.md): one BOSH session, logged in with SASL-HMAC.
 * Token::prebind() checks the arguments and runs it.
 *
 * @internal
 */
final class Prebind
{
    /** The most BOSH wait asked for, in seconds. */
    public const MAX_WAIT = 10;
    /** Empty answers in a row polled past. */
    public const MAX_POLLS = 5;
    /** The largest answer read, in bytes. */
    public const MAX_ANSWER = 1 << 20;
    private const MAX_TRIED = 1 << 16;
    private const SERVER_NONCE_LEN = 24;
    private const NS_BOSH = 'http://jabber.org/protocol/httpbind';
    private const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
    private const NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind';
    private const NS_XML = 'http://www.w3.org/XML/1998/namespace';

    /**
     * SHA-256 of the public parts of the tokens sent (as keys, oldest first): SASL-HMAC has no
     * client nonce, so an impostor that recorded one exchange could answer a second one with the
     * same token, and a token is never sent twice (docs/sasl-hmac.md). PHP keeps static properties
     * for one request only (a CLI worker: its whole run), so the caller must mint per call.
     *
     * @var array<string, true>
     */
    private static array $tried = [];

    /** @var (callable(): float)|null the monotonic clock in seconds; tests replace it */
    private static $clock = null;

    /** @var callable(string, float): array{0: int, 1: string} */
    private $transport;
    private float $deadline;
    private int $wait;
    private int $rid;
    private ?string $sid = null;

    /** @param callable(string, float): array{0: int, 1: string} $transport */
    private function __construct(callable $transport, float $timeout)
    {
        $this->transport = $transport;
        $this->deadline = self::now() + $timeout;
        $this->wait = (int) min(self::MAX_WAIT, ceil($timeout));
        $this->rid = random_int(1 << 20, (1 << 20) + (1 << 40)); // room to count up within 2^53 (XEP-0124 section 7)
    }

    /**
     * Replaces the monotonic clock (seconds), or restores it with null. For tests only.
     *
     * @param (callable(): float)|null $clock
     */
    public static function useClock(?callable $clock): void
    {
        self::$clock = $clock;
    }

    private static function now(): float
    {
        return self::$clock === null ? hrtime(true) / 1e9 : (float) (self::$clock)();
    }

    /**
     * Refuses a token this process has tried, then remembers it.
     *
     * @throws TokenError kind "token"
     */
    public static function once(#[\SensitiveParameter] string $public): void
    {
        $tag = hash('sha256', $public, true);
        if (isset(self::$tried[$tag])) {
            throw new TokenError(TokenError::TOKEN, 'this token was tried before: mint a new one for each prebind');
        }
        self::$tried[$tag] = true;
        while (count(self::$tried) > self::MAX_TRIED) {
            unset(self::$tried[array_key_first(self::$tried)]);
        }
    }

    /** The most bytes of an answer's status line and headers. */
    public const MAX_HEAD = 16384;
    /** The most header lines of an answer. */
    public const MAX_HEADER_LINES = 64;

    /**
     * The default transport: one HTTP/1.1 POST over stream_socket_client (tcp://, or tls:// with
     * the peer's certificate and name verified, SNI), Connection: close, no proxy, no redirect. One
     * deadline bounds the whole exchange, every read and write included (PHP's stream timeouts are
     * per read: a server trickling a byte at a time would hold the HTTP wrapper for ever); the
     * status line and headers, their lines and the body are capped. The answer's body is read by
     * its Content-Length (as Prosody sends it), chunked, or to the end of the connection.
     *
     * @param array{scheme: string, host: string, port: int, path: string} $target
     *
     * @return callable(string, float): array{0: int, 1: string}
     */
    public static function http(array $target): callable
    {
        return static function (string $body, float $timeout) use ($target): array {
            $deadline = self::now() + $timeout;
            $https = $target['scheme'] === 'https';
            $host = $target['host'];
            $where = "$host:{$target['port']}";
            $name = trim($host, '[]'); // an IPv6 literal's brackets
            $context = stream_context_create(['ssl' => [
                'verify_peer' => true,
                'verify_peer_name' => true,
                'peer_name' => $name,
                'SNI_enabled' => true,
                'allow_self_signed' => false,
                'capture_peer_cert' => false,
            ]]);
            $warnings = [];
            set_error_handler(static function (int $no, string $text) use (&$warnings): bool {
                $warnings[] = $text; // names the URL and the failure, never the body
                return true;
            });
            try {
                $stream = stream_socket_client(
                    ($https ? 'tls://' : 'tcp://') . $where,
                    $errno,
                    $errstr,
                    max(0.001, $deadline - self::now()),
                    STREAM_CLIENT_CONNECT,
                    $context,
                );
            } finally {
                restore_error_handler();
            }
            if ($stream === false) {
                throw new \RuntimeException("$where: " . self::connectFailure($warnings, (string) $errstr));
            }
            try {
                $default = ($https ? 443 : 80) === $target['port'];
                $request = "POST {$target['path']} HTTP/1.1\r\nHost: " . ($default ? $host : $where) . "\r\n"
                    . "Content-Type: text/xml; charset=utf-8\r\nContent-Length: " . strlen($body) . "\r\n"
                    . "Connection: close\r\n\r\n" . $body;
                while ($request !== '') {
                    self::timeLeft($stream, $deadline, $where);
                    $n = @fwrite($stream, $request);
                    if ($n === false || ($n === 0 && stream_get_meta_data($stream)['timed_out'])) {
                        throw new \RuntimeException("$where: the request could not be sent");
                    }
                    $request = (string) substr($request, $n);
                }
                // the status line and headers
                $buffer = '';
                while (($end = strpos($buffer, "\r\n\r\n", max(0, strlen($buffer) - 8192 - 3))) === false) {
                    if (strlen($buffer) > self::MAX_HEAD) {
                        throw new \RuntimeException("$where: the answer's headers are over " . self::MAX_HEAD . ' bytes');
                    }
                    $chunk = self::read($stream, $deadline, $where, 8192);
                    if ($chunk === '') {
                        throw new \RuntimeException("$where: the connection closed in the headers");
                    }
                    $buffer .= $chunk;
                }
                if ($end > self::MAX_HEAD) {
                    throw new \RuntimeException("$where: the answer's headers are over " . self::MAX_HEAD . ' bytes');
                }
                $lines = explode("\r\n", substr($buffer, 0, $end));
                $rest = (string) substr($buffer, $end + 4);
                if (count($lines) > self::MAX_HEADER_LINES + 1) {
                    throw new \RuntimeException("$where: the answer has over " . self::MAX_HEADER_LINES . ' header lines');
                }
                if (preg_match('#\AHTTP/1\.[01] ([0-9]{3})(?: |\z)#', (string) array_shift($lines), $m) !== 1) {
                    throw new \RuntimeException("$where: the answer is not HTTP/1.x");
                }
                $status = (int) $m[1];
                if ($status !== 200) {
                    return [$status, '']; // refused whatever its body
                }
                $length = null;
                $chunked = false;
                foreach ($lines as $line) {
                    if (preg_match('/\A([!#-\'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*\z/', $line, $h) !== 1) {
                        throw new \RuntimeException("$where: a malformed header line");
                    }
                    $field = strtolower($h[1]);
                    if ($field === 'content-length') {
                        if (preg_match('/\A[0-9]{1,9}\z/', $h[2]) !== 1 || ($length !== null && $length !== (int) $h[2])) {
                            throw new \RuntimeException("$where: a malformed Content-Length");
                        }
                        $length = (int) $h[2];
                    } elseif ($field === 'transfer-encoding') {
                        if (strtolower($h[2]) !== 'chunked' || $chunked) {
                            throw new \RuntimeException("$where: a transfer coding other than chunked");
                        }
                        $chunked = true;
                    }
                }
                if ($chunked && $length !== null) {
                    throw new \RuntimeException("$where: both Content-Length and chunked");
                }
                if ($length !== null) {
                    if ($length > self::MAX_ANSWER) {
                        throw new \RuntimeException("$where: an answer over " . self::MAX_ANSWER . ' bytes');
                    }
                    while (strlen($rest) < $length) {
                        $chunk = self::read($stream, $deadline, $where, $length - strlen($rest));
                        if ($chunk === '') {
                            throw new \RuntimeException("$where: the connection closed in the body");
                        }
                        $rest .= $chunk;
                    }
                    return [200, substr($rest, 0, $length)];
                }
                // chunked or to the end: the raw bytes are capped with room for the chunk sizes
                $at = 0;
                $answer = '';
                for (;;) {
                    if ($chunked && self::unchunk($rest, $at, $answer)) {
                        return [200, $answer];
                    }
                    if (strlen($rest) > self::MAX_ANSWER + 65536) {
                        throw new \RuntimeException("$where: an answer over " . self::MAX_ANSWER . ' bytes');
                    }
                    $chunk = self::read($stream, $deadline, $where, 65536);
                    if ($chunk === '') {
                        if ($chunked) {
                            throw new \RuntimeException("$where: the connection closed in the body");
                        }
                        return [200, $rest];
                    }
                    $rest .= $chunk;
                }
            } finally {
                fclose($stream);
            }
        };
    }

    /**
     * Sets the stream's timeout to the time left before $deadline.
     *
     * @param resource $stream
     */
    private static function timeLeft($stream, float $deadline, string $where): void
    {
        $left = $deadline - self::now();
        if ($left <= 0) {
            throw new \RuntimeException("timed out at $where");
        }
        $seconds = (int) floor($left);
        stream_set_timeout($stream, $seconds, max(1, (int) (($left - $seconds) * 1e6)));
    }

    /**
     * Up to $max bytes, within the time left; '' at the end of the connection.
     *
     * @param resource $stream
     */
    private static function read($stream, float $deadline, string $where, int $max): string
    {
        self::timeLeft($stream, $deadline, $where);
        $chunk = @fread($stream, max(1, min($max, 65536)));
        if (stream_get_meta_data($stream)['timed_out'] || self::now() >= $deadline) {
            throw new \RuntimeException("timed out at $where");
        }
        if ($chunk === false) {
            throw new \RuntimeException("$where: the connection failed");
        }
        if ($chunk === '' && !feof($stream)) {
            throw new \RuntimeException("$where: the connection failed");
        }
        return $chunk;
    }

    /**
     * Decodes the chunks of $raw from $at on into $out (both kept across calls, so each byte is
     * read once); true when the last chunk and the trailers are in. Throws when it is malformed.
     */
    private static function unchunk(string $raw, int &$at, string &$out): bool
    {
        for (;;) {
            $eol = strpos($raw, "\r\n", $at);
            if ($eol === false) {
                if (strlen($raw) - $at > 1024) {
                    throw new \RuntimeException('a malformed chunk');
                }
                return false;
            }
            if (preg_match('/\A([0-9A-Fa-f]{1,8})(?:;[^\r\n]{0,1000})?\z/', substr($raw, $at, $eol - $at), $m) !== 1) {
                throw new \RuntimeException('a malformed chunk');
            }
            $size = (int) hexdec($m[1]);
            if ($size === 0) {
                // the trailers, if any, end with an empty line
                return strpos($raw, "\r\n\r\n", $eol) !== false;
            }
            if (strlen($out) + $size > self::MAX_ANSWER) {
                throw new \RuntimeException('an answer over ' . self::MAX_ANSWER . ' bytes');
            }
            if (strlen($raw) < $eol + 2 + $size + 2) {
                return false;
            }
            if (substr($raw, $eol + 2 + $size, 2) !== "\r\n") {
                throw new \RuntimeException('a malformed chunk');
            }
            $out .= substr($raw, $eol + 2, $size);
            $at = $eol + 2 + $size + 2;
        }
    }

    /**
     * Why a connection failed, from PHP's warnings: OpenSSL's reason (e.g. "certificate verify
     * failed") rather than its "operation failed".
     *
     * @param list<string> $warnings
     */
    private static function connectFailure(array $warnings, string $errstr): string
    {
        foreach ($warnings as $w) {
            if (preg_match('/error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^\n]+)/', $w, $m) === 1) {
                return 'TLS: ' . $m[1];
            }
        }
        foreach ($warnings as $w) {
            if (preg_match('/(certificate|peer|SSL|TLS|crypto)/i', $w) === 1) {
                return preg_replace('/^.*?: /', '', $w) ?? $w;
            }
        }
        if ($errstr !== '') {
            return $errstr;
        }
        return $warnings === [] ? 'no connection' : (preg_replace('/^.*?: /', '', end($warnings)) ?? 'no connection');
    }

    /**
     * Logs in $bare with the token ($public, $s) and binds a resource.
     *
     * @param callable(string, float): array{0: int, 1: string} $transport
     *
     * @return array{jid: string, sid: string, rid: int}
     *
     * @throws PrebindError
     */
    public static function run(
        callable $transport,
        float $timeout,
        string $bare,
        #[\SensitiveParameter] string $public,
        #[\SensitiveParameter] string $s,
        ?string $resource,
    ): array {
        $bosh = new self($transport, $timeout);
        [$local, $domain] = explode('@', $bare, 2);
        $body = $bosh->post('', [
            'to' => $domain, 'xml:lang' => 'en', 'ver' => '1.6', 'wait' => (string) $bosh->wait, 'hold' => '1',
            'content' => 'text/xml; charset=utf-8', 'xmlns:xmpp' => 'urn:xmpp:xbosh', 'xmpp:version' => '1.0',
        ]);
        $sid = $body['attrs']['sid'] ?? '';
        if ($sid === '') {
            throw new PrebindError(PrebindError::TRANSPORT, 'Prosody did not open a BOSH session (no sid)');
        }
        $bosh->sid = $sid;
        $features = $bosh->next($body);
        $offered = [];
        $mechanisms = self::child($features, '{' . self::NS_SASL . '}mechanisms');
        foreach ($mechanisms['children'] ?? [] as $m) {
            if ($m['tag'] === '{' . self::NS_SASL . '}mechanism' && $m['children'] === []) { // its text alone: SASL-<x/>HMAC names none
                $offered[] = $m['text'];
            }
        }
        if (!in_array('SASL-HMAC', $offered, true)) { // never another: PLAIN would send the whole token
            $list = implode(', ', array_map([self::class, 'printable'], array_slice($offered, 0, 8)));
            throw new PrebindError(
                PrebindError::UNPROVEN,
                'the server does not offer SASL-HMAC (it offers: ' . ($list === '' ? 'none' : $list)
                . '): is this the Prosody that holds token_secret?',
            );
        }

        $clientFirst = "\0" . $local . "\0" . $public;
        $el = $bosh->next($bosh->post(
            "<auth xmlns='" . self::NS_SASL . "' mechanism='SASL-HMAC'>" . base64_encode($clientFirst) . '</auth>',
        ));
        self::refused($el);
        if ($el['tag'] !== '{' . self::NS_SASL . '}challenge') {
            throw new PrebindError(PrebindError::UNPROVEN, 'the server answered the login with a ' . self::localName($el['tag']) . ', not a challenge');
        }
        $serverNonce = self::base64($el['text']);
        if ($serverNonce === null) {
            throw new PrebindError(PrebindError::TRANSPORT, "Prosody's challenge is not base64");
        }
        if (strlen($serverNonce) !== self::SERVER_NONCE_LEN) {
            throw new PrebindError(PrebindError::TRANSPORT, "Prosody's challenge is not " . self::SERVER_NONCE_LEN . ' octets');
        }

        $proof = self::proof($s, 'SASL-HMAC client', $clientFirst, $serverNonce);
        $el = $bosh->next($bosh->post("<response xmlns='" . self::NS_SASL . "'>" . base64_encode($proof) . '</response>'));
        self::refused($el);
        if ($el['tag'] !== '{' . self::NS_SASL . '}success') {
            throw new PrebindError(PrebindError::UNPROVEN, 'the server answered the proof with a ' . self::localName($el['tag']) . ', not success');
        }
        $expected = self::proof($s, 'SASL-HMAC server', $clientFirst, $serverNonce);
        if (!hash_equals($expected, self::base64($el['text']) ?? '')) { // the session is never used unproven
            throw new PrebindError(PrebindError::UNPROVEN, 'the server could not prove that it holds the token secret');
        }

        $features = $bosh->next($bosh->post('', [
            'to' => $domain, 'xml:lang' => 'en', 'xmpp:restart' => 'true', 'xmlns:xmpp' => 'urn:xmpp:xbosh',
        ]));
        if (self::child($features, '{' . self::NS_BIND . '}bind') === null) {
            throw new PrebindError(PrebindError::TRANSPORT, 'Prosody offered no resource binding');
        }
        $res = $resource === null ? '' : '<resource>' . htmlspecialchars($resource, ENT_QUOTES | ENT_XML1, 'UTF-8') . '</resource>';
        $el = $bosh->next($bosh->post(
            "<iq xmlns='jabber:client' type='set' id='prebind_1'><bind xmlns='" . self::NS_BIND . "'>$res</bind></iq>",
        ));
        $bind = self::child($el, '{' . self::NS_BIND . '}bind');
        $jid = $bind === null ? null : self::child($bind, '{' . self::NS_BIND . '}jid');
        $full = $jid['text'] ?? '';
        if ($el['tag'] !== '{jabber:client}iq' || ($el['attrs']['type'] ?? '') !== 'result' || $full === '') {
            throw new PrebindError(PrebindError::TRANSPORT, 'Prosody did not bind a resource');
        }
        if (!str_starts_with($full, $bare . '/') || strlen($full) <= strlen($bare) + 1) { // the token's user, or no session
            throw new PrebindError(PrebindError::UNPROVEN, "the server bound another JID than the token's");
        }
        return ['jid' => $full, 'sid' => $sid, 'rid' => $bosh->rid];
    }

    /**
     * One request; returns the answer's <body/>.
     *
     * @param array<string, string> $attrs
     *
     * @return array{tag: string, attrs: array<string, string>, children: list<array<mixed>>, text: string}
     */
    private function post(#[\SensitiveParameter] string $inner = '', array $attrs = []): array
    {
        $attrs['rid'] = (string) $this->rid;
        if ($this->sid !== null) {
            $attrs['sid'] = $this->sid;
        }
        $this->rid++;
        $head = '';
        foreach ($attrs as $k => $v) {
            $head .= " $k='" . htmlspecialchars($v, ENT_QUOTES | ENT_XML1, 'UTF-8') . "'";
        }
        $data = "<body xmlns='" . self::NS_BOSH . "'$head>$inner</body>";
        $left = $this->deadline - self::now();
        if ($left <= 0) {
            throw new PrebindError(PrebindError::TRANSPORT, 'Prosody did not complete the login in time');
        }
        try {
            $answer = ($this->transport)($data, $left);
        } catch (PrebindError | TokenError $e) {
            throw $e;
        } catch (\Throwable $e) {
            throw new PrebindError(PrebindError::TRANSPORT, 'no answer from Prosody (' . self::printable($e->getMessage()) . ')');
        }
        if (!is_array($answer) || !is_int($answer[0] ?? null) || !is_string($answer[1] ?? null)) {
            throw new PrebindError(PrebindError::TRANSPORT, 'the transport returned no [status, body]');
        }
        [$status, $text] = $answer;
        if ($status !== 200) {
            throw new PrebindError(PrebindError::TRANSPORT, "Prosody answered HTTP $status: is the URL its BOSH endpoint?");
        }
        if (strlen($text) > self::MAX_ANSWER) {
            throw new PrebindError(PrebindError::TRANSPORT, "Prosody's answer is over " . self::MAX_ANSWER . ' bytes');
        }
        try {
            $body = self::parse($text);
        } catch (\UnexpectedValueException) {
            throw new PrebindError(PrebindError::TRANSPORT, "Prosody's answer is not XML (or has a DOCTYPE or a comment)");
        }
        if ($body['tag'] !== '{' . self::NS_BOSH . '}body') {
            throw new PrebindError(PrebindError::TRANSPORT, "Prosody's answer is not a BOSH body");
        }
        if (($body['attrs']['type'] ?? '') === 'terminate') {
            throw new PrebindError(
                PrebindError::TRANSPORT,
                'Prosody terminated the BOSH session (' . self::printable($body['attrs']['condition'] ?? 'no condition') . ')',
            );
        }
        return $body;
    }

    /**
     * The first child of this answer, or of the next answer with one.
     *
     * @param array{tag: string, attrs: array<string, string>, children: list<array<mixed>>, text: string} $body
     *
     * @return array{tag: string, attrs: array<string, string>, children: list<array<mixed>>, text: string}
     */
    private function next(array $body): array
    {
        $polls = 0;
        while ($body['children'] === []) {
            if ($polls === self::MAX_POLLS) {
                throw new PrebindError(PrebindError::TRANSPORT, "Prosody sent nothing in $polls polls");
            }
            $polls++;
            $body = $this->post();
        }
        return $body['children'][0];
    }

    /** @param array{tag: string, attrs: array<string, string>, children: list<array<mixed>>, text: string} $el */
    private static function refused(array $el): void
    {
        if ($el['tag'] !== '{' . self::NS_SASL . '}failure') {
            return;
        }
        $condition = 'failure';
        foreach ($el['children'] as $c) {
            if (str_starts_with($c['tag'], '{' . self::NS_SASL . '}') && $c['tag'] !== '{' . self::NS_SASL . '}text') {
                $condition = self::localName($c['tag']);
                break;
            }
        }
        throw new PrebindError(PrebindError::REFUSED, "Prosody refused the login: $condition", $condition);
    }

    private static function proof(#[\SensitiveParameter] string $s, string $label, #[\SensitiveParameter] string $clientFirst, string $serverNonce): string
    {
        return hash_hmac('sha256', $label . "\0" . $clientFirst . "\0" . $serverNonce, $s, true);
    }

    private static function base64(string $text): ?string
    {
        $text = trim($text);
        if (preg_match('#\A(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\z#', $text) !== 1) {
            return null;
        }
        $raw = base64_decode($text, true);
        return $raw === false ? null : $raw;
    }

    /**
     * @param array{tag: string, attrs: array<string, string>, children: list<array<mixed>>, text: string} $el
     *
     * @return array{tag: string, attrs: array<string, string>, children: list<array<mixed>>, text: string}|null
     */
    private static function child(array $el, string $tag): ?array
    {
        foreach ($el['children'] as $c) {
            if ($c['tag'] === $tag) {
                return $c;
            }
        }
        return null;
    }

    private static function localName(string $tag): string
    {
        $brace = strrpos($tag, '}');
        return self::printable($brace === false ? $tag : substr($tag, $brace + 1));
    }

    private static function printable(string $text): string
    {
        return (string) preg_replace('/[^ -~]/', '?', substr($text, 0, 64));
    }

    // -----------------------------------------------------------------------------------------
    // A small XML reader for BOSH answers: elements, attributes, text, CDATA and namespaces. It
    // refuses a DOCTYPE (no entity is ever defined or expanded), comments, processing instructions
    // other than the XML declaration (which must say UTF-8, if anything), characters outside XML's
    // Char, a duplicate attribute, an undeclared prefix (xmlns:p=''), and more than the caps below;
    // PHP's XML extensions are not needed. It runs in time linear in the answer: an element's
    // namespace scope links to its parent's, and only an element that declares one has its own.

    // Caps per answer: Prosody's answers during a prebind hold a few dozen elements; these bound
    // the reader's work and memory for an answer that is no BOSH answer.
    private const XML_MAX_DEPTH = 32;
    private const XML_MAX_ELEMENTS = 4096;
    private const XML_MAX_ATTRIBUTES = 8192; // namespace declarations included
    private const XML_MAX_XMLNS = 1024;

    /**
     * @return array{tag: string, attrs: array<string, string>, children: list<array<mixed>>, text: string}
     *
     * @throws \UnexpectedValueException when $text is not one XML element this reader accepts
     */
    public static function parse(string $text): array
    {
        // valid UTF-8 (no encoded surrogate) of XML 1.0's Char only
        if (preg_match('/[^\x{9}\x{A}\x{D}\x{20}-\x{D7FF}\x{E000}-\x{FFFD}\x{10000}-\x{10FFFF}]/u', $text) !== 0) {
            throw new \UnexpectedValueException('not UTF-8 XML characters');
        }
        $i = str_starts_with($text, "\u{FEFF}") ? 3 : 0;
        $i += strspn($text, " \t\r\n", $i);
        if (substr($text, $i, 5) === '<?xml') {
            $decl = '/\G<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*([\'"])1\.[0-9]+\1'
                . '(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*([\'"])[Uu][Tt][Ff]-8\2)?'
                . '(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*([\'"])(?:yes|no)\3)?[ \t\r\n]*\?>/';
            if (preg_match($decl, $text, $m, 0, $i) !== 1) {
                throw new \UnexpectedValueException('not XML');
            }
            $i += strlen($m[0]);
            $i += strspn($text, " \t\r\n", $i);
        }
        if (($text[$i] ?? '') !== '<' || in_array($text[$i + 1] ?? '', ['!', '?'], true)) {
            throw new \UnexpectedValueException('not XML');
        }
        $count = ['elements' => 0, 'attributes' => 0, 'xmlns' => 0];
        $root = self::element($text, $i, null, 0, $count);
        $i += strspn($text, " \t\r\n", $i);
        if ($i !== strlen($text)) {
            throw new \UnexpectedValueException('not XML');
        }
        return $root;
    }

    /**
     * @param array{decls: array<string, string>, parent: array<mixed>|null}|null $parentScope
     * @param array{elements: int, attributes: int, xmlns: int} $count
     *
     * @return array{tag: string, attrs: array<string, string>, children: list<array<mixed>>, text: string}
     */
    private static function element(string $text, int &$i, ?array $parentScope, int $depth, array &$count): array
    {
        if ($depth > self::XML_MAX_DEPTH || ++$count['elements'] > self::XML_MAX_ELEMENTS) {
            throw new \UnexpectedValueException('too deep or too many elements');
        }
        $i++; // "<"
        $qname = self::name($text, $i);
        $raw = [];
        $decls = null;
        $names = [];
        for (;;) {
            $before = $i;
            $i += strspn($text, " \t\r\n", $i);
            if (substr($text, $i, 2) === '/>' || ($text[$i] ?? '') === '>') {
                break;
            }
            if ($i === $before) {
                throw new \UnexpectedValueException('not XML');
            }
            $key = self::name($text, $i);
            if (isset($names[$key]) || ++$count['attributes'] > self::XML_MAX_ATTRIBUTES) {
                throw new \UnexpectedValueException('a duplicate attribute, or too many');
            }
            $names[$key] = true;
            $i += strspn($text, " \t\r\n", $i);
            if (($text[$i] ?? '') !== '=') {
                throw new \UnexpectedValueException('not XML');
            }
            $i++;
            $i += strspn($text, " \t\r\n", $i);
            $quote = $text[$i] ?? '';
            $end = $quote === "'" || $quote === '"' ? strpos($text, $quote, $i + 1) : false;
            if ($end === false) {
                throw new \UnexpectedValueException('not XML');
            }
            $value = substr($text, $i + 1, $end - $i - 1);
            if (str_contains($value, '<')) {
                throw new \UnexpectedValueException('not XML');
            }
            $i = $end + 1;
            if ($key === 'xmlns' || str_starts_with($key, 'xmlns:')) {
                $prefix = $key === 'xmlns' ? '' : substr($key, 6);
                $ns = self::decode($value);
                if (($prefix !== '' && $ns === '') || $prefix === 'xml' || $prefix === 'xmlns' || ++$count['xmlns'] > self::XML_MAX_XMLNS) {
                    throw new \UnexpectedValueException('an undeclared prefix, a reserved one, or too many declarations');
                }
                $decls[$prefix] = $ns;
            } else {
                $raw[] = [$key, self::decode($value)];
            }
        }
        $scope = $decls === null ? $parentScope : ['decls' => $decls, 'parent' => $parentScope];
        $el = ['tag' => self::resolve($qname, $scope, false), 'attrs' => [], 'children' => [], 'text' => ''];
        foreach ($raw as [$key, $value]) {
            $expanded = self::resolve($key, $scope, true);
            if (array_key_exists($expanded, $el['attrs'])) { // a:x and b:x bound to one namespace
                throw new \UnexpectedValueException('a duplicate attribute');
            }
            $el['attrs'][$expanded] = $value;
        }
        if (substr($text, $i, 2) === '/>') {
            $i += 2;
            return $el;
        }
        $i++; // ">"
        for (;;) {
            $lt = strpos($text, '<', $i);
            if ($lt === false) {
                throw new \UnexpectedValueException('not XML');
            }
            $el['text'] .= self::decode(substr($text, $i, $lt - $i));
            $i = $lt;
            if (substr($text, $i, 2) === '</') {
                $i += 2;
                if (self::name($text, $i) !== $qname) {
                    throw new \UnexpectedValueException('not XML');
                }
                $i += strspn($text, " \t\r\n", $i);
                if (($text[$i] ?? '') !== '>') {
                    throw new \UnexpectedValueException('not XML');
                }
                $i++;
                return $el;
            }
            if (substr($text, $i, 9) === '<![CDATA[') {
                $end = strpos($text, ']]>', $i);
                if ($end === false) {
                    throw new \UnexpectedValueException('not XML');
                }
                $el['text'] .= substr($text, $i + 9, $end - $i - 9);
                $i = $end + 3;
            } elseif (in_array($text[$i + 1] ?? '', ['!', '?'], true)) {
                throw new \UnexpectedValueException('a DOCTYPE, comment or processing instruction');
            } else {
                $el['children'][] = self::element($text, $i, $scope, $depth + 1, $count);
            }
        }
    }

    private static function name(string $text, int &$i): string
    {
        if (preg_match('/\G[A-Za-z_][A-Za-z0-9_.-]*(?::[A-Za-z_][A-Za-z0-9_.-]*)?/', $text, $m, 0, $i) !== 1) {
            throw new \UnexpectedValueException('not XML');
        }
        $i += strlen($m[0]);
        return $m[0];
    }

    /**
     * The namespace $prefix is bound to, walking at most XML_MAX_DEPTH + 1 links up.
     *
     * @param array{decls: array<string, string>, parent: array<mixed>|null}|null $scope
     */
    private static function lookup(?array $scope, string $prefix): ?string
    {
        for (; $scope !== null; $scope = $scope['parent']) {
            if (isset($scope['decls'][$prefix])) {
                return $scope['decls'][$prefix];
            }
        }
        return null;
    }

    /** @param array{decls: array<string, string>, parent: array<mixed>|null}|null $scope */
    private static function resolve(string $qname, ?array $scope, bool $isAttr): string
    {
        $colon = strpos($qname, ':');
        if ($colon === false) {
            return $isAttr ? $qname : '{' . (self::lookup($scope, '') ?? '') . '}' . $qname;
        }
        $prefix = substr($qname, 0, $colon);
        $ns = $prefix === 'xml' ? self::NS_XML : self::lookup($scope, $prefix);
        if ($ns === null) {
            throw new \UnexpectedValueException('an unbound prefix');
        }
        return '{' . $ns . '}' . substr($qname, $colon + 1);
    }

    private static function utf8(int $code): string
    {
        if ($code < 0x80) {
            return chr($code);
        }
        if ($code < 0x800) {
            return chr(0xC0 | $code >> 6) . chr(0x80 | $code & 0x3F);
        }
        if ($code < 0x10000) {
            return chr(0xE0 | $code >> 12) . chr(0x80 | $code >> 6 & 0x3F) . chr(0x80 | $code & 0x3F);
        }
        return chr(0xF0 | $code >> 18) . chr(0x80 | $code >> 12 & 0x3F) . chr(0x80 | $code >> 6 & 0x3F) . chr(0x80 | $code & 0x3F);
    }

    private static function decode(string $raw): string
    {
        return (string) preg_replace_callback('/&([^;&<]*)(;?)/', static function (array $m): string {
            $named = ['lt' => '<', 'gt' => '>', 'amp' => '&', 'quot' => '"', 'apos' => "'"];
            if ($m[2] !== ';') {
                throw new \UnexpectedValueException('a bare &');
            }
            if (isset($named[$m[1]])) {
                return $named[$m[1]];
            }
            if (preg_match('/\A#(?:x([0-9A-Fa-f]{1,6})|([0-9]{1,7}))\z/', $m[1], $n) === 1) {
                $code = ($n[1] ?? '') !== '' ? (int) hexdec($n[1]) : (int) $n[2];
                if ($code === 0x9 || $code === 0xA || $code === 0xD || ($code >= 0x20 && $code <= 0xD7FF)
                    || ($code >= 0xE000 && $code <= 0xFFFD) || ($code >= 0x10000 && $code <= 0x10FFFF)) { // XML's Char
                    return self::utf8($code);
                }
            }
            throw new \UnexpectedValueException('an unknown entity');
        }, $raw);
    }
}
