<?php

/*
 * ProsodyHmacToken\Token on PHPUnit (Debian's phpunit: 9 on bookworm, 11 on trixie):
 * phpunit -c clients/php/phpunit.xml.dist
 *
 * Every case of the contract files tests/vectors/minting.json and tests/vectors/tokens.json (found
 * relative to this file) plus focused checks. A test method records every failed check and reports
 * them all at its end, so one run shows every broken vector, not just the first.
 */

declare(strict_types=1);

namespace ProsodyHmacToken\Tests;

use PHPUnit\Framework\TestCase;
use ProsodyHmacToken\Token;
use ProsodyHmacToken\TokenError;

final class TokenTest extends TestCase
{
    /** @var list<string> */
    private array $failures = [];

    private function check(bool $ok, string $what): void
    {
        $this->addToAssertionCount(1);
        if (!$ok) {
            $this->failures[] = $what;
        }
    }

    protected function assertPostConditions(): void
    {
        $this->assertSame([], $this->failures, implode("\n", $this->failures));
    }

    /** Runs $f; returns the TokenError it throws, or null (any other throwable is a failure). */
    private function thrown(callable $f, string $what): ?TokenError
    {
        try {
            $f();
        } catch (TokenError $e) {
            return $e;
        } catch (\Throwable $e) {
            $this->check(false, "$what: threw " . get_class($e) . ': ' . $e->getMessage());
        }
        return null;
    }

    private static function show(mixed $v): string
    {
        return json_encode($v, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE) ?: var_export($v, true);
    }

    private static function load(string $name): array
    {
        $path = __DIR__ . '/../../../tests/vectors/' . $name;
        $text = file_get_contents($path);
        self::assertIsString($text, "cannot read $path");
        return json_decode($text, true, 512, JSON_THROW_ON_ERROR);
    }

    /** Every case of tests/vectors/minting.json: the token, the signed JID, the credentials body, and that verify accepts it; or the error kind. */
    public function testMintingVectors(): void
    {
        $m = self::load('minting.json');
        $this->check(count($m['cases']) > 0, 'minting.json has cases');
        foreach ($m['cases'] as $c) {
            $name = 'minting.json "' . $c['name'] . '"';
            $settings = ($c['settings'] ?? []) + $m['defaults'];
            $secret = $c['token_secret'] ?? $m['token_secret'];
            $prepared = $c['prepared'] ?? false;
            $options = [
                'now' => $c['now'],
                'nonce' => $c['nonce'],
                'digits' => $settings['digits'],
                'step' => $settings['step'],
                'nonce_digits' => $settings['nonce_digits'],
                'prepared' => $prepared,
            ];
            if (isset($c['token'])) {
                try {
                    $token = Token::mint($c['jid'], $secret, $m['otp_seed'], $options);
                    $this->check($token === $c['token'], "$name: mint gave " . self::show($token) . ', want ' . self::show($c['token']));
                    $signed = Token::signedJid($c['jid'], $prepared);
                    $this->check($signed === $c['signed_jid'], "$name: signedJid gave " . self::show($signed) . ', want ' . self::show($c['signed_jid']));
                    $cred = Token::credentials($c['jid'], $secret, $m['otp_seed'], $options);
                    $this->check(
                        $cred === ['jid' => $c['signed_jid'], 'password' => $c['token']],
                        "$name: credentials gave " . self::show($cred),
                    );
                    $v = Token::verify($c['token'], $c['jid'], $secret, $m['otp_seed'], [
                        'now' => $c['now'], 'digits' => $settings['digits'], 'step' => $settings['step'],
                        'nonce_digits' => $settings['nonce_digits'], 'prepared' => $prepared,
                    ]);
                    $this->check($v === null, "$name: verify of the minted token gave " . self::show($v));
                } catch (\Throwable $e) {
                    $this->check(false, "$name: threw " . get_class($e) . ': ' . $e->getMessage());
                }
            } else {
                $e = $this->thrown(fn () => Token::mint($c['jid'], $secret, $m['otp_seed'], $options), "$name: mint");
                $this->check($e !== null && $e->kind === $c['error'], "$name: mint should raise kind " . $c['error'] . ', got ' . self::show($e?->kind));
                $e = $this->thrown(fn () => Token::credentials($c['jid'], $secret, $m['otp_seed'], $options), "$name: credentials");
                $this->check($e !== null && $e->kind === $c['error'], "$name: credentials should raise kind " . $c['error'] . ', got ' . self::show($e?->kind));
                if ($c['error'] === 'jid') {
                    $e = $this->thrown(fn () => Token::signedJid($c['jid'], $prepared), "$name: signedJid");
                    $this->check($e !== null && $e->kind === 'jid', "$name: signedJid should raise kind jid, got " . self::show($e?->kind));
                }
            }
        }
    }

    /** Every case of tests/vectors/tokens.json through the stateless verify. */
    public function testTokenVectors(): void
    {
        $t = self::load('tokens.json');
        $this->check(count($t['cases']) > 0, 'tokens.json has cases');
        foreach ($t['cases'] as $c) {
            $name = 'tokens.json "' . $c['name'] . '"';
            // "replayed": refusing a replay needs the server's state (its replay cache); a stateless verify
            // accepts the token again.
            $want = match ($c['result']) {
                'ok', 'replayed' => null,
                default => $c['result'],
            };
            try {
                $got = Token::verify($c['token'], $c['jid'], $t['secrets'], $t['otp_seed'], [
                    'now' => $c['now'], 'digits' => $t['digits'], 'step' => $t['step'], 'skew' => $t['skew'],
                    'host' => $t['host'],
                ]);
                $this->check($got === $want, "$name: verify gave " . self::show($got) . ', want ' . self::show($want));
            } catch (\Throwable $e) {
                $this->check(false, "$name: threw " . get_class($e) . ': ' . $e->getMessage());
            }
        }
    }

    /** 1000 random nonces: distinct, each exactly nonce_digits ASCII digits; all ten digits occur. */
    public function testRandomNonces(): void
    {
        $m = self::load('minting.json');
        $seed = $m['otp_seed'];
        $secret = $m['token_secret'];

        foreach ([16, 32, 64] as $n) {
            $seen = [];
            $shapeOk = true;
            for ($i = 0; $i < 1000; $i++) {
                $token = Token::mint('alice@example.org', $secret, $seed, ['nonce_digits' => $n]);
                $nonce = substr($token, 8, $n);
                $shapeOk = $shapeOk && preg_match('/\A[0-9]{8}[0-9]{' . $n . '} [A-Za-z0-9+\/]{43}=\z/', $token) === 1;
                $seen[$nonce] = true;
                if ($i < 3) {
                    $this->check(Token::verify($token, 'alice@example.org', $secret, $seed, ['nonce_digits' => $n]) === null, "random token ($n nonce digits) verifies");
                }
            }
            $this->check($shapeOk, "1000 tokens with $n nonce digits all have the shape OTP(8) NONCE($n) base64(44)");
            $this->check(count($seen) === 1000, "1000 nonces of $n digits are distinct (got " . count($seen) . ')');
            $digits = count_chars(implode('', array_keys($seen)), 3);
            $this->check($digits === '0123456789', "nonces of $n digits use all ten digits (got " . self::show($digits) . ')');
        }
    }

    /** The default 'now' is time(): a token minted now verifies at time(). */
    public function testDefaultNowIsTime(): void
    {
        $m = self::load('minting.json');
        $seed = $m['otp_seed'];
        $secret = $m['token_secret'];

        $fresh = Token::mint('Bob@Example.org', $secret, $seed);
        $this->check(Token::verify($fresh, 'bob@example.org', $secret, $seed, ['now' => time()]) === null, 'a token minted with the default now verifies at time()');
        $this->check(Token::verify($fresh, 'BOB@example.ORG', [$secret], $seed, ['host' => 'example.org']) === null, 'verify prepares the JID as mint does');
    }

    /** A base32 seed reads the same lower-case and padded (pyotp-compatible). */
    public function testSeedSpellings(): void
    {
        $m = self::load('minting.json');
        $seed = $m['otp_seed'];
        $secret = $m['token_secret'];

        $a = Token::mint('alice@example.org', $secret, $seed, ['now' => 1700000000, 'nonce' => str_repeat('0', 31) . '1']);
        foreach ([strtolower($seed), $seed . '======', 'xvgr73kmzh2m4xmy='] as $spelling) {
            $this->check(Token::mint('alice@example.org', $secret, $spelling, ['now' => 1700000000, 'nonce' => str_repeat('0', 31) . '1']) === $a, 'seed spelling ' . self::show($spelling) . ' decodes the same');
        }
    }

    /** RFC 6238 appendix B (SHA-1, 8 digits; seed = base32("12345678901234567890")). */
    public function testRfc6238(): void
    {
        $m = self::load('minting.json');
        $seed = $m['otp_seed'];
        $secret = $m['token_secret'];

        $rfcSeed = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
        foreach ([59 => '94287082', 1111111109 => '07081804', 1111111111 => '14050471', 1234567890 => '89005924', 2000000000 => '69279037', 20000000000 => '65353130'] as $now => $otp) {
            $tok = Token::mint('a@b', 'k', $rfcSeed, ['now' => $now]);
            $this->check(substr($tok, 0, 8) === $otp, "RFC 6238 OTP at $now is $otp (got " . substr($tok, 0, 8) . ')');
        }
    }

    /** Verify: skew 0 accepts only the current step; a stateless verify accepts the same token twice. */
    public function testVerify(): void
    {
        $m = self::load('minting.json');
        $seed = $m['otp_seed'];
        $secret = $m['token_secret'];

        $tok = Token::mint('alice@example.org', $secret, $seed, ['now' => 1700000000]);
        $this->check(Token::verify($tok, 'alice@example.org', $secret, $seed, ['now' => 1700000030, 'skew' => 0]) === 'expired', 'skew 0: the next step is expired');
        $this->check(Token::verify($tok, 'alice@example.org', $secret, $seed, ['now' => 1700000030, 'skew' => 1]) === null, 'skew 1: the next step is accepted');
        $this->check(Token::verify($tok, 'alice@example.org', $secret, $seed, ['now' => 1700000000]) === null, 'verify is stateless: a second verify is valid too');
        $this->check(Token::verify($tok, 'alice@example.org', 'another-secret', $seed, ['now' => 1700000000]) === 'bad-signature', 'another secret: bad-signature');
        $this->check(Token::verify($tok, 'alice@example.org', $secret, $seed, ['now' => 1700000000, 'host' => 'other.example']) === 'wrong-host', 'another host: wrong-host');
        $this->check(Token::verify($tok, 'alice@example.org', $secret, $seed, ['now' => 1700000000, 'host' => 'Example.ORG']) === null, 'the host compares case-insensitively');
        $this->check(Token::verify($tok, 'alice', $secret, $seed, ['now' => 1700000000]) === 'malformed', 'a JID signedJid refuses: malformed');
        $this->check(Token::verify(str_repeat('1', 1100), 'alice@example.org', $secret, $seed) === 'malformed', 'a token over 1 KiB: malformed');
        $this->check(Token::verify($tok, 'alice@example.org', $secret, $seed, ['now' => 0]) === 'expired', 'now = 0 (no negative counters): expired');
        $this->check(Token::verify($tok, 'alice@example.org', $secret, $seed, ['now' => PHP_INT_MAX, 'step' => 1, 'skew' => 10]) === 'expired', 'now = PHP_INT_MAX: expired, no overflow');
    }

    /** Prepared JIDs are signed unchanged; non-ASCII is refused without it, with a message that says how. */
    public function testPreparedJids(): void
    {
        $m = self::load('minting.json');
        $seed = $m['otp_seed'];
        $secret = $m['token_secret'];

        $this->check(Token::signedJid('ñandú@example.org', true) === 'ñandú@example.org', 'prepared non-ASCII signed as given');
        $this->check(Token::signedJid('Ñandú@example.org', true) === 'Ñandú@example.org', 'prepared: not changed at all');
        $this->check(Token::signedJid('Alice@EXAMPLE.org') === 'alice@example.org', 'ASCII lower-cased');
        $e = $this->thrown(fn () => Token::signedJid('ñandú@example.org'), 'non-ASCII');
        $this->check($e !== null && $e->kind === 'jid' && str_contains($e->getMessage(), "'prepared' => true") && str_contains($e->getMessage(), 'hmac-token jid NAME@HOST'), 'non-ASCII message says how to pass it prepared: ' . self::show($e?->getMessage()));
        foreach (["\xff\xfe@example.org", 'a b@example.org', 'a/b@example.org', 'a@b@example.org', '@example.org', 'alice@', "a\x00b@example.org", "a\x1fb@example.org", 'ñandú@bücher.example', 'ñandú@example..org', 'ñandú@Example.org'] as $jid) {
            $e = $this->thrown(fn () => Token::signedJid($jid, true), 'prepared ' . self::show($jid));
            $this->check($e !== null && $e->kind === 'jid', 'prepared still refuses ' . self::show($jid) . ' (kind jid)');
        }
    }

    /** TokenError: kinds, type, and what is refused as settings. */
    public function testErrorKinds(): void
    {
        $m = self::load('minting.json');
        $seed = $m['otp_seed'];
        $secret = $m['token_secret'];

        $kinds = [
            'digits 9' => [fn () => Token::mint('a@b', $secret, $seed, ['digits' => 9]), 'settings'],
            'digits as a string' => [fn () => Token::mint('a@b', $secret, $seed, ['digits' => '8']), 'settings'],
            'step 0' => [fn () => Token::mint('a@b', $secret, $seed, ['step' => 0]), 'settings'],
            'nonce_digits 65' => [fn () => Token::mint('a@b', $secret, $seed, ['nonce_digits' => 65]), 'settings'],
            'now as a float' => [fn () => Token::mint('a@b', $secret, $seed, ['now' => 1700000000.5]), 'settings'],
            'negative now' => [fn () => Token::mint('a@b', $secret, $seed, ['now' => -1]), 'settings'],
            'prepared as a string' => [fn () => Token::mint('a@b', $secret, $seed, ['prepared' => 'yes']), 'settings'],
            'unknown option' => [fn () => Token::mint('a@b', $secret, $seed, ['nonceDigits' => 16]), 'settings'],
            'skew given to mint' => [fn () => Token::mint('a@b', $secret, $seed, ['skew' => 1]), 'settings'],
            'nonce given to verify' => [fn () => Token::verify('x', 'a@b', $secret, $seed, ['nonce' => '1']), 'settings'],
            'skew 11' => [fn () => Token::verify('x', 'a@b', $secret, $seed, ['skew' => 11]), 'settings'],
            'skew -1' => [fn () => Token::verify('x', 'a@b', $secret, $seed, ['skew' => -1]), 'settings'],
            'host not a domain' => [fn () => Token::verify('x', 'a@b', $secret, $seed, ['host' => 'a b']), 'settings'],
            'empty secret list' => [fn () => Token::verify('x', 'a@b', [], $seed), 'settings'],
            'non-string secret' => [fn () => Token::verify('x', 'a@b', [$secret, 5], $seed), 'settings'],
            'empty secret' => [fn () => Token::mint('a@b', '', $seed), 'settings'],
            'empty seed' => [fn () => Token::mint('a@b', $secret, ''), 'settings'],
            'seed of padding only' => [fn () => Token::mint('a@b', $secret, '===='), 'settings'],
            'seed not base32' => [fn () => Token::mint('a@b', $secret, 'XVGR73KMZH2M4XM1'), 'settings'],
            'seed of impossible length' => [fn () => Token::mint('a@b', $secret, 'XVG'), 'settings'],
            'nonce of letters' => [fn () => Token::mint('a@b', $secret, $seed, ['nonce' => str_repeat('a', 32)]), 'nonce'],
            'nonce with a trailing newline' => [fn () => Token::mint('a@b', $secret, $seed, ['nonce' => str_repeat('1', 31) . "\n"]), 'nonce'],
            'nonce as an int' => [fn () => Token::mint('a@b', $secret, $seed, ['nonce' => 1]), 'nonce'],
            'full JID' => [fn () => Token::credentials('a@b/r', $secret, $seed), 'jid'],
            'settings before the JID' => [fn () => Token::mint('', $secret, $seed, ['digits' => 5]), 'settings'],
            'the JID before the nonce' => [fn () => Token::mint('', $secret, $seed, ['nonce' => '1']), 'jid'],
        ];
        foreach ($kinds as $what => [$f, $kind]) {
            $e = $this->thrown($f, $what);
            $this->check($e !== null && $e->kind === $kind, "$what: TokenError kind $kind, got " . self::show($e?->kind));
        }
        $e = $this->thrown(fn () => Token::signedJid('nope'), 'signedJid nope');
        $this->check($e instanceof \InvalidArgumentException, 'TokenError is an InvalidArgumentException');
        $this->check((new \ReflectionClass(TokenError::class))->isFinal() && (new \ReflectionClass(Token::class))->isFinal(), 'Token and TokenError are final');
        $this->check((new \ReflectionProperty(TokenError::class, 'kind'))->isReadOnly(), 'TokenError::$kind is readonly');
    }

    /** Messages (and, with #[\SensitiveParameter], traces) never contain the secret or the seed. */
    public function testMessagesAndTracesHoldNoSecret(): void
    {
        $m = self::load('minting.json');
        $seed = $m['otp_seed'];
        $secret = $m['token_secret'];

        $marker = 'SECRET-MARKER-9f3a1c';
        $seedMarker = 'MZXW6YTBOI'; // valid base32 ("foobar")
        $badSeed = 'MZXW6YTBOI1';  // not base32
        $leaky = [
            fn () => Token::mint('a b@example.org', $marker, $seedMarker),
            fn () => Token::mint('ñandú@example.org', $marker, $seedMarker),
            fn () => Token::mint('alice@example.org', $marker, $seedMarker, ['nonce' => '12x']),
            fn () => Token::mint('alice@example.org', $marker, $seedMarker, ['digits' => 9]),
            fn () => Token::mint('alice@example.org', $marker, $badSeed),
            fn () => Token::credentials('alice@', $marker, $seedMarker),
            fn () => Token::verify('t', 'alice@example.org', [$marker, 7], $seedMarker),
            fn () => Token::verify('t', 'alice@example.org', $marker, $badSeed),
            fn () => Token::verify('t', 'alice@example.org', $marker, $seedMarker, ['skew' => 99]),
        ];
        foreach ($leaky as $i => $f) {
            $e = $this->thrown($f, "leak check $i");
            if ($e === null) {
                $this->check(false, "leak check $i: no TokenError");
                continue;
            }
            // the library's own frames (this test's closures and methods hold the secret themselves)
            $frames = array_filter($e->getTrace(), fn (array $f) => in_array($f['class'] ?? '', [Token::class, TokenError::class], true));
            $this->check(count($frames) > 0, "leak check $i: the trace has the library's frames");
            $texts = [$e->getMessage(), (string) $e, $e->getTraceAsString(), print_r($frames, true), var_export($frames, true)];
            $clean = true;
            foreach ($texts as $text) {
                foreach ([$marker, $seedMarker, $badSeed] as $s) {
                    $clean = $clean && !str_contains($text, $s);
                }
            }
            $this->check($clean, "leak check $i: message and trace contain neither secret nor seed (" . $e->getMessage() . ')');
        }
    }
}
