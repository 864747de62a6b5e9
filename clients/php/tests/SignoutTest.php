<?php

/*
 * Token::signoutRequest against tests/vectors/signout.json, and Token::signout against a `php -S`
 * server (tests/signout-server.php) and a socket that never answers.
 * phpunit -c clients/php/phpunit.xml.dist
 */

declare(strict_types=1);

namespace ProsodyHmacToken\Tests;

use PHPUnit\Framework\TestCase;
use ProsodyHmacToken\SignoutError;
use ProsodyHmacToken\Token;
use ProsodyHmacToken\TokenError;

final class SignoutTest extends TestCase
{
    private const JID = 'alice@example.org';
    private const NOW = 1700000000;

    /** @var resource|null the php -S process */
    private $server = null;
    private string $dir = '';
    private string $url = '';

    private static function vectors(): array
    {
        $text = file_get_contents(__DIR__ . '/../../../tests/vectors/signout.json');
        self::assertIsString($text);
        return json_decode($text, true, 512, JSON_THROW_ON_ERROR);
    }

    private static function secret(): string
    {
        return self::vectors()['secrets'][0];
    }

    /** The TokenError kind $f throws, or "no error". */
    private static function kindOf(callable $f): string
    {
        try {
            $f();
        } catch (TokenError $e) {
            return $e->kind;
        }
        return 'no error';
    }

    /** Every case with `mint` (the secret, time, nonce and JID): the exact line. */
    public function testSignoutVectorsBuildEachLine(): void
    {
        $minted = array_values(array_filter(self::vectors()['cases'], fn (array $c) => isset($c['mint'])));
        $this->assertGreaterThanOrEqual(10, count($minted));
        $failures = [];
        foreach ($minted as $c) {
            $m = $c['mint'];
            if (!is_int($m['time'])) {
                // A time beyond PHP_INT_MAX (2^63-1; JSON gives a float) is one no PHP int can
                // pass: such a case is left out, and only such a case (testOptionErrors checks
                // PHP_INT_MAX itself).
                if (!(is_float($m['time']) && $m['time'] >= 2 ** 63)) {
                    $failures[] = $c['name'] . ': time ' . json_encode($m['time']) . ' is not an integer';
                }
                continue;
            }
            $line = Token::signoutRequest($m['jid'], $m['secret'], ['now' => $m['time'], 'nonce' => $m['nonce']]);
            if ($line !== $c['line']) {
                $failures[] = $c['name'] . ": $line, want " . $c['line'];
            }
        }
        $this->assertSame([], $failures);
    }

    /**
     * The vectors' requests refused as malformed for their JID alone (every other field well
     * formed: v1, TIME, a 32-digit NONCE, a canonical MAC) are not built.
     */
    public function testSignoutVectorsRefusedJidsAreNotBuilt(): void
    {
        $v = self::vectors();
        $checked = 0;
        foreach ($v['cases'] as $c) {
            $fields = explode(' ', $c['line']);
            if ($c['expect'] !== 'malformed' || count($fields) !== 5) {
                continue;
            }
            [$version, $time, $nonce, $jid, $mac] = $fields;
            $raw = base64_decode($mac, true);
            $canonical = $raw !== false && strlen($raw) === 32 && base64_encode($raw) === $mac;
            if ($version !== 'v1' || preg_match('/\A[1-9][0-9]{0,18}\z/', $time) !== 1 || (string) (int) $time !== $time
                || preg_match('/\A[0-9]{32}\z/', $nonce) !== 1 || !$canonical) {
                continue; // a TIME beyond PHP_INT_MAX is left out too: no such case concerns the JID
            }
            $checked++;
            $kind = self::kindOf(fn () => Token::signoutRequest($jid, $v['secrets'][0], ['now' => (int) $time, 'nonce' => $nonce]));
            $this->assertSame('jid', $kind, $c['name']);
        }
        $this->assertGreaterThanOrEqual(10, $checked);
    }

    public function testNonceIsFreshDigits(): void
    {
        $nonces = [];
        for ($i = 0; $i < 200; $i++) {
            $nonce = explode(' ', Token::signoutRequest(self::JID, self::secret(), ['now' => self::NOW]))[2];
            $this->assertMatchesRegularExpression('/\A[0-9]{32}\z/', $nonce);
            $nonces[$nonce] = true;
        }
        $this->assertCount(200, $nonces);
    }

    public function testNowDefaultsToTheClock(): void
    {
        $before = time();
        $t = (int) explode(' ', Token::signoutRequest(self::JID, self::secret()))[1];
        $this->assertTrue($t >= $before && $t <= time());
    }

    public function testOptionErrors(): void
    {
        $s = self::secret();
        foreach ([0, -1, '1700000000', 1.5, true] as $now) {
            $this->assertSame('settings', self::kindOf(fn () => Token::signoutRequest(self::JID, $s, ['now' => $now])), var_export($now, true));
        }
        $this->assertSame('1', explode(' ', Token::signoutRequest(self::JID, $s, ['now' => 1]))[1]);
        $this->assertSame((string) PHP_INT_MAX, explode(' ', Token::signoutRequest(self::JID, $s, ['now' => PHP_INT_MAX]))[1]);
        $this->assertSame('settings', self::kindOf(fn () => Token::signoutRequest(self::JID, '', ['now' => self::NOW])));
        $this->assertSame('settings', self::kindOf(fn () => Token::signoutRequest(self::JID, $s, ['prepared' => true])));
        foreach ([str_repeat('1', 31), str_repeat('1', 33), str_repeat('1', 31) . 'x', str_repeat('١', 16), 7] as $nonce) {
            $this->assertSame('nonce', self::kindOf(fn () => Token::signoutRequest(self::JID, $s, ['now' => self::NOW, 'nonce' => $nonce])));
        }
    }

    public function testJidNotPreparedIsRefused(): void
    {
        $s = self::secret();
        $bad = ['Alice@example.org', 'alicE@example.org', 'alice@Example.org', 'alice@example.org/web', 'al ice@example.org',
            "al\u{3000}ice@example.org", "al\u{a0}ice@example.org", str_repeat('a', 1024) . '@example.org',
            'alice@' . str_repeat('a', 1024), '', 'alice', '@example.org', 'alice@', 'a@b@example.org', "\xff@example.org",
            'jÜrgen@example.org', 'ǅa@example.org', "al\u{ad}ice@example.org", "al\u{200b}ice@example.org",
            "al\u{fe0f}ice@example.org", "al\u{85}ice@example.org", "al\u{e000}ice@example.org", 'aاb@example.org',
            'اb@example.org', 'aا@example.org', 'اbا@example.org'];
        foreach ($bad as $jid) {
            $this->assertSame('jid', self::kindOf(fn () => Token::signoutRequest($jid, $s, ['now' => self::NOW])), $jid);
        }
        $longest = str_repeat('a', 1023) . '@' . str_repeat('b', 1023);
        $this->assertSame($longest, explode(' ', Token::signoutRequest($longest, $s, ['now' => self::NOW]))[3]);
        foreach (['ñandú@example.org', 'اب@example.org', 'ا1ب@example.org', 'o.brien-smith_2+x@example.org'] as $prepared) {
            $this->assertSame($prepared, explode(' ', Token::signoutRequest($prepared, $s, ['now' => self::NOW]))[3]);
        }
    }

    // -----------------------------------------------------------------------------------------
    // signout(): the delivery

    private function startServer(int $status): void
    {
        $this->dir = sys_get_temp_dir() . '/signout-test-' . bin2hex(random_bytes(6));
        mkdir($this->dir);
        file_put_contents($this->dir . '/status', (string) $status);
        touch($this->dir . '/requests');
        $probe = stream_socket_server('tcp://127.0.0.1:0');
        $this->assertNotFalse($probe);
        $port = (int) substr((string) stream_socket_get_name($probe, false), strlen('127.0.0.1:'));
        fclose($probe);
        $env = ['SIGNOUT_TEST_DIR' => $this->dir, 'PATH' => (string) getenv('PATH')];
        $cmd = [PHP_BINARY, '-n', '-S', "127.0.0.1:$port", __DIR__ . '/signout-server.php'];
        $this->server = proc_open($cmd, [0 => ['pipe', 'r'], 1 => ['file', '/dev/null', 'w'], 2 => ['file', '/dev/null', 'w']], $pipes, $this->dir, $env);
        $this->assertIsResource($this->server);
        $this->url = "http://127.0.0.1:$port/auth_hmac/signout";
        for ($i = 0; $i < 200; $i++) { // until it listens (at most 10 s)
            $c = @stream_socket_client("tcp://127.0.0.1:$port", $errno, $errstr, 1);
            if ($c !== false) {
                fclose($c);
                return;
            }
            usleep(50000);
        }
        $this->fail('php -S did not start');
    }

    /** @return list<array{method: string, path: string, type: ?string, host: ?string, body: string}> */
    private function requests(): array
    {
        $lines = array_filter(explode("\n", (string) file_get_contents($this->dir . '/requests')));
        return array_values(array_map(fn (string $l) => json_decode($l, true, 8, JSON_THROW_ON_ERROR), $lines));
    }

    protected function tearDown(): void
    {
        if ($this->server !== null) {
            proc_terminate($this->server);
            proc_close($this->server);
            $this->server = null;
        }
        if ($this->dir !== '') {
            array_map('unlink', glob($this->dir . '/*') ?: []);
            rmdir($this->dir);
        }
    }

    private static function signoutError(callable $f): SignoutError
    {
        try {
            $f();
        } catch (SignoutError $e) {
            return $e;
        }
        self::fail('no SignoutError');
    }

    private static function assertHides(\Throwable $e, array $values): void
    {
        $frames = array_filter($e->getTrace(), fn (array $f) => ($f['class'] ?? '') === Token::class);
        self::assertNotEmpty($frames, "the trace has the library's frames");
        $text = implode("\n", [$e->getMessage(), (string) $e, $e->getTraceAsString(), print_r($frames, true)]);
        foreach ($values as $v) {
            self::assertStringNotContainsString($v, $text);
        }
    }

    public function testSignoutPostsTheRequestAsTextPlain(): void
    {
        $this->startServer(200);
        $s = self::secret();
        Token::signout($this->url, self::JID, $s, ['now' => self::NOW]);
        Token::signout($this->url, self::JID, $s, ['now' => self::NOW]);
        $requests = $this->requests();
        $this->assertCount(2, $requests);
        [$r] = $requests;
        $this->assertSame('POST', $r['method']);
        $this->assertSame('/auth_hmac/signout', $r['path']);
        $this->assertSame('text/plain', $r['type']);
        $this->assertSame('example.org', $r['host']); // Prosody routes a host's HTTP paths by it
        $nonce = explode(' ', $r['body'])[2];
        $this->assertSame(Token::signoutRequest(self::JID, $s, ['now' => self::NOW, 'nonce' => $nonce]), $r['body']);
        $this->assertNotSame($nonce, explode(' ', $requests[1]['body'])[2]);
    }

    public function testSignoutHostHeaderCanBeNamed(): void
    {
        $this->startServer(200);
        Token::signout($this->url, self::JID, self::secret(), ['now' => self::NOW, 'host' => 'chat.example.org']);
        $this->assertSame('chat.example.org', $this->requests()[0]['host']);
    }

    /** @return array<string, array{int, string}> */
    public static function answers(): array
    {
        return ['403' => [403, 'refused'], '404' => [404, 'http'], '500' => [500, 'http'], '307' => [307, 'http']];
    }

    /** @dataProvider answers */
    public function testSignoutNotAccepted(int $status, string $kind): void
    {
        $this->startServer($status);
        $s = self::secret();
        $e = self::signoutError(fn () => Token::signout($this->url, self::JID, $s, ['now' => self::NOW]));
        $this->assertSame($kind, $e->kind);
        $this->assertSame($status, $e->status);
        $requests = $this->requests();
        $this->assertCount(1, $requests); // a redirect is not followed
        self::assertHides($e, [$requests[0]['body'], explode(' ', $requests[0]['body'])[4], $s]);
    }

    public function testSignoutTimesOut(): void
    {
        // connections complete in the backlog; nothing is ever read or answered
        $silent = stream_socket_server('tcp://127.0.0.1:0');
        $this->assertNotFalse($silent);
        $url = 'http://' . stream_socket_get_name($silent, false) . '/auth_hmac/signout';
        $s = self::secret();
        $started = hrtime(true);
        $e = self::signoutError(fn () => Token::signout($url, self::JID, $s, ['now' => self::NOW, 'timeout' => 0.3]));
        $elapsed = (hrtime(true) - $started) / 1e9;
        fclose($silent);
        $this->assertSame('network', $e->kind);
        $this->assertNull($e->status);
        $this->assertStringContainsString('timed out after 0.3 s', $e->getMessage());
        $this->assertTrue($elapsed >= 0.3 && $elapsed < 3, "$elapsed s");
        self::assertHides($e, [$s, 'v1 ' . self::NOW]);
    }

    public function testSignoutConnectionRefused(): void
    {
        $probe = stream_socket_server('tcp://127.0.0.1:0');
        $this->assertNotFalse($probe);
        $where = (string) stream_socket_get_name($probe, false);
        fclose($probe); // nobody listens there now
        $s = self::secret();
        $e = self::signoutError(fn () => Token::signout("http://$where/auth_hmac/signout", self::JID, $s, ['now' => self::NOW]));
        $this->assertSame('network', $e->kind);
        self::assertHides($e, [$s, 'v1 ' . self::NOW]);
    }

    public function testBadArgumentsSendNothing(): void
    {
        $this->startServer(200);
        $s = self::secret();
        $bad = [
            ['file:///etc/passwd', []], ['ftp://127.0.0.1/x', []], ['127.0.0.1:5280/auth_hmac/signout', []],
            ['php://memory', []], ['http:///x', []],
            [$this->url, ['timeout' => 0]], [$this->url, ['timeout' => -1]], [$this->url, ['timeout' => 601]],
            [$this->url, ['timeout' => NAN]], [$this->url, ['timeout' => '5']], [$this->url, ['nonce' => str_repeat('1', 32)]],
            [$this->url, ['host' => '']], [$this->url, ['host' => 'a b']], [$this->url, ['host' => "a\r\nX-Evil: 1"]],
            [$this->url, ['host' => 'ñ.example']], [$this->url, ['host' => 5]],
        ];
        foreach ($bad as [$url, $options]) {
            $this->assertSame('settings', self::kindOf(fn () => Token::signout($url, self::JID, $s, ['now' => self::NOW] + $options)), $url);
        }
        $this->assertSame('jid', self::kindOf(fn () => Token::signout($this->url, 'Alice@example.org', $s, ['now' => self::NOW])));
        $this->assertSame([], $this->requests());
    }
}
