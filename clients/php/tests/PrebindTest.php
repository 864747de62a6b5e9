<?php

/*
 * Token::prebind (docs/prebind.md) against the scripted servers of tests/vectors/prebind.json,
 * through a fake transport that checks every request the client makes.
 * phpunit -c clients/php/phpunit.xml.dist
 */

declare(strict_types=1);

namespace ProsodyHmacToken\Tests;

use PHPUnit\Framework\TestCase;
use ProsodyHmacToken\PrebindError;
use ProsodyHmacToken\Token;
use ProsodyHmacToken\TokenError;

/** Answers each request with the script's next step, after checking the request is that step's. */
final class ScriptedServer
{
    /** @var list<array<string, mixed>> */
    public array $steps;
    /** @var list<int> */
    public array $rids = [];
    /** @var list<string> */
    public array $sent = [];
    /** @var list<float> */
    public array $lefts = [];
    public ?string $broken = null;

    private string $domain;

    /**
     * Keeps the case's script and domain only: the server is in the traces the tests search for
     * the token, so it must not hold it itself.
     *
     * @param array<string, mixed> $case
     */
    public function __construct(array $case, private string $sid)
    {
        $this->steps = $case['script'];
        $this->domain = explode('@', $case['jid'])[1];
    }

    /** What a request is, read with DOM (independently of the library's XML reader). */
    private function kind(string $data): string
    {
        $doc = new \DOMDocument();
        if (!@$doc->loadXML($data, LIBXML_NONET)) {
            return 'not XML';
        }
        $body = $doc->documentElement;
        if ($body === null || $body->namespaceURI !== 'http://jabber.org/protocol/httpbind' || $body->localName !== 'body') {
            return 'not a BOSH body';
        }
        $children = [];
        foreach ($body->childNodes as $n) {
            if ($n instanceof \DOMElement) {
                $children[] = $n;
            }
        }
        if (!$body->hasAttribute('sid')) {
            return $body->getAttribute('to') === $this->domain && $body->getAttribute('hold') === '1' && $children === [] ? 'create' : 'bad create';
        }
        if ($body->getAttribute('sid') !== $this->sid) {
            return 'wrong sid';
        }
        if ($body->getAttributeNS('urn:xmpp:xbosh', 'restart') === 'true') {
            return $children === [] ? 'restart' : 'bad restart';
        }
        if ($children === []) {
            return 'poll';
        }
        if (count($children) !== 1) {
            return 'several elements';
        }
        $el = $children[0];
        $sasl = 'urn:ietf:params:xml:ns:xmpp-sasl';
        if ($el->namespaceURI === $sasl && $el->localName === 'auth') {
            return 'auth ' . ($el->getAttribute('mechanism') === 'SASL-HMAC' ? $el->textContent : $el->getAttribute('mechanism'));
        }
        if ($el->namespaceURI === $sasl && $el->localName === 'response') {
            return 'response ' . $el->textContent;
        }
        if ($el->namespaceURI === 'jabber:client' && $el->localName === 'iq' && $el->getAttribute('type') === 'set'
            && $el->getElementsByTagNameNS('urn:ietf:params:xml:ns:xmpp-bind', 'bind')->length === 1) {
            return 'bind';
        }
        return 'unknown ' . $el->localName;
    }

    /** @return array{0: int, 1: string} */
    public function __invoke(string $data, float $left): array
    {
        $this->sent[] = $data;
        $this->lefts[] = $left;
        preg_match("/\\srid='(\\d+)'/", $data, $m);
        $this->rids[] = (int) ($m[1] ?? -1);
        $step = array_shift($this->steps);
        if ($step === null) {
            $this->broken = "sent after the script ended: $data";
            throw new \LogicException('script ended');
        }
        $got = $this->kind($data);
        $want = isset($step['payload']) ? $step['request'] . ' ' . $step['payload'] : $step['request'];
        if ($got !== $want) {
            $this->broken = "sent $got, the script expects $want";
            throw new \LogicException('script broken');
        }
        if ($step['response'] === null) {
            throw new \RuntimeException('connection refused');
        }
        return [$step['status'] ?? 200, $step['response']];
    }
}

final class PrebindTest extends TestCase
{
    /** @return array<string, mixed> */
    private static function vectors(): array
    {
        $text = file_get_contents(__DIR__ . '/../../../tests/vectors/prebind.json');
        self::assertIsString($text);
        return json_decode($text, true, 512, JSON_THROW_ON_ERROR);
    }

    /** @return iterable<string, array{0: array<string, mixed>}> */
    public static function cases(): iterable
    {
        foreach (self::vectors()['cases'] as $c) {
            yield $c['name'] => [$c];
        }
    }

    private static function genuine(): array
    {
        foreach (self::vectors()['cases'] as $c) {
            if ($c['name'] === 'the genuine exchange') {
                return $c;
            }
        }
        throw new \LogicException('no genuine case');
    }

    /** Another token for the genuine case's JID (a token is tried once per process). */
    private static function fresh(int $n): string
    {
        [$public, $mac] = explode(' ', self::genuine()['token']);
        return substr($public, 0, -6) . sprintf('9%05d', $n) . ' ' . $mac; // the vectors number theirs from 1
    }

    private static function hidden(\Throwable $e, string $token): bool
    {
        [$public, $mac] = explode(' ', $token);
        // the library's frames, up to the call of Token::prebind: the caller's own are its business
        $frames = [];
        foreach ($e->getTrace() as $frame) {
            $frames[] = $frame;
            if (($frame['class'] ?? '') === Token::class && $frame['function'] === 'prebind') {
                break;
            }
        }
        self::assertSame('prebind', end($frames)['function']);
        $text = $e->getMessage() . "\n" . print_r($frames, true);
        return !str_contains($text, $public) && !str_contains($text, $mac) && !str_contains($text, substr($mac, 0, 20));
    }

    /**
     * @dataProvider cases
     *
     * @param array<string, mixed> $c
     */
    public function testPrebindVector(array $c): void
    {
        $server = new ScriptedServer($c, self::vectors()['sid']);
        try {
            $outcome = Token::prebind('http://127.0.0.1:1/http-bind', $c['jid'], $c['token'], ['transport' => $server]);
        } catch (PrebindError $e) {
            $outcome = $e;
        }
        self::assertNull($server->broken);
        self::assertSame(range($server->rids[0], $server->rids[0] + count($server->rids) - 1), $server->rids, 'rids count up by one');
        self::assertTrue($server->rids[0] > 0 && $server->rids[0] < 2 ** 53 - 2 ** 32);
        if (isset($c['expect']['error'])) {
            self::assertInstanceOf(PrebindError::class, $outcome);
            self::assertSame([$c['expect']['error'], $c['expect']['condition'] ?? null], [$outcome->kind, $outcome->condition], $outcome->getMessage());
            self::assertTrue(self::hidden($outcome, $c['token']));
            foreach ($server->sent as $d) {
                self::assertStringNotContainsString('PLAIN', $d);
            }
        } else {
            self::assertSame(['jid' => $c['expect']['jid'], 'sid' => $c['expect']['sid'], 'rid' => end($server->rids) + 1], $outcome);
        }
        self::assertSame([], $server->steps, "the client stopped before the script's end");
    }

    public function testTheVectorsCoverEachOutcome(): void
    {
        $kinds = array_count_values(array_map(static fn (array $c): string => $c['expect']['error'] ?? 'ok', self::vectors()['cases']));
        foreach (['ok', 'refused', 'unproven', 'transport'] as $k) {
            self::assertGreaterThanOrEqual(3, $kinds[$k] ?? 0, $k);
        }
    }

    public function testATokenIsSentOnce(): void
    {
        $c = self::genuine();
        $c['token'] = self::fresh(1);
        $c['script'] = [$c['script'][0], ['payload' => '(any)'] + $c['script'][1]];
        $server = new ScriptedServer($c, self::vectors()['sid']);
        try {
            Token::prebind('http://127.0.0.1:1/http-bind', $c['jid'], $c['token'], ['transport' => $server]);
            self::fail('no error');
        } catch (PrebindError $e) {
            self::assertStringContainsString('script expects auth', (string) $server->broken);
        }
        $again = new ScriptedServer($c, self::vectors()['sid']);
        try {
            Token::prebind('http://127.0.0.1:1/http-bind', $c['jid'], $c['token'], ['transport' => $again]);
            self::fail('no error');
        } catch (TokenError $e) {
            self::assertSame('token', $e->kind);
            self::assertTrue(self::hidden($e, $c['token']));
        }
        self::assertSame([], $again->sent);
    }

    public function testTheCallersMistakesAreRefusedBeforeAnythingIsSent(): void
    {
        $c = self::genuine();
        $server = new ScriptedServer($c, self::vectors()['sid']);
        $cases = [
            ['alice', $c['token'], [], 'jid'],
            ['alice@example.org/res', $c['token'], [], 'jid'],
            [$c['jid'], 'not a token', [], 'token'],
            [$c['jid'], str_replace(' ', '  ', $c['token']), [], 'token'],
            [$c['jid'], explode(' ', self::fresh(6))[0] . ' ' . str_repeat('A', 42) . 'B=', [], 'token'], // not canonical
            [$c['jid'], self::fresh(2), ['timeout' => 0], 'settings'],
            [$c['jid'], self::fresh(2), ['timeout' => 601], 'settings'],
            [$c['jid'], self::fresh(2), ['timeout' => NAN], 'settings'],
            [$c['jid'], self::fresh(2), ['resource' => ''], 'settings'],
            [$c['jid'], self::fresh(2), ['resource' => "a\nb"], 'settings'],
            [$c['jid'], self::fresh(2), ['transport' => 'no such function'], 'settings'],
            [$c['jid'], self::fresh(2), ['token_secret' => 'x'], 'settings'],
        ];
        foreach ($cases as [$jid, $token, $options, $kind]) {
            try {
                Token::prebind('http://127.0.0.1:1/http-bind', $jid, $token, $options + ['transport' => $server]);
                self::fail("no error for $jid $token");
            } catch (TokenError $e) {
                self::assertSame($kind, $e->kind, "$jid $token " . json_encode($options));
            }
        }
        try {
            Token::prebind('ftp://x/', $c['jid'], self::fresh(3));
            self::fail('no error');
        } catch (TokenError $e) {
            self::assertSame('settings', $e->kind);
        }
        self::assertSame([], $server->sent);
    }

    public function testTheTimeoutIsPassedToEveryRequestAndBoundsTheWait(): void
    {
        $c = self::genuine();
        $lefts = [];
        $waits = [];
        $slow = static function (string $data, float $left) use (&$lefts, &$waits): array {
            $lefts[] = $left;
            preg_match("/\\swait='(\\d+)'/", $data, $m);
            $waits[] = $m[1] ?? null;
            throw new \RuntimeException('no answer');
        };
        try {
            Token::prebind('http://127.0.0.1:1/http-bind', $c['jid'], self::fresh(4), ['transport' => $slow, 'timeout' => 2.5]);
            self::fail('no error');
        } catch (PrebindError $e) {
            self::assertSame('transport', $e->kind); // a real server's timeout: testATrickleEndsAtTheTimeout
        }
        self::assertCount(1, $lefts);
        self::assertTrue($lefts[0] > 2.4 && $lefts[0] <= 2.5);
        self::assertSame(['3'], $waits);
    }

    public function testTheDeadlineEndsTheLogin(): void
    {
        $c = self::genuine();
        $clock = 1000.0;
        $lefts = [];
        $slow = static function (string $data, float $left) use (&$clock, &$lefts): array {
            $lefts[] = $left;
            $clock += 3.0; // each answer takes 3 s of the 7 allowed
            return [200, "<body xmlns='http://jabber.org/protocol/httpbind' sid='s'/>"];
        };
        \ProsodyHmacToken\Prebind::useClock(static function () use (&$clock): float {
            return $clock;
        });
        try {
            Token::prebind('http://127.0.0.1:1/http-bind', $c['jid'], self::fresh(5), ['transport' => $slow, 'timeout' => 7]);
            self::fail('no error');
        } catch (PrebindError $e) {
            self::assertSame('transport', $e->kind);
            self::assertStringContainsString('in time', $e->getMessage());
        } finally {
            \ProsodyHmacToken\Prebind::useClock(null);
        }
        self::assertSame([7.0, 4.0, 1.0], $lefts);
    }

    public function testTheReaderRefusesWhatItMustNotRead(): void
    {
        foreach ([
            "<!DOCTYPE b [<!ENTITY x 'y'>]><b>&x;</b>",
            '<b><!-- a comment --></b>',
            '<b>&unknown;</b>',
            '<b>a & b</b>',
            '<b>&lt</b>', // no semicolon
            '<b>&#xD800;</b>',
            '<b><c></b></c>',
            '<p:b/>',
            '<b/><b/>',
            str_repeat('<b>', 40) . str_repeat('</b>', 40),
            "<b a='<'/>",
            "<b>\xff</b>",
            "<b>\xed\xa0\x80</b>", // an encoded surrogate
            '<b>&constructor;</b>',
            "<b a='1' a='2'/>",
            "<b xmlns:p='u' xmlns:p='v'/>",
            "<b xmlns:p='u' xmlns:q='u' p:a='1' q:a='2'/>", // one expanded name twice
            "<b xmlns:p=''/>",
            "<b xmlns:xmlns='u'/>",
            "<b xmlns:xml='u'/>",
            '<b>&#1;</b>',
            '<b>&#xFFFE;</b>',
            "<b>\x01</b>",
            "<b>\u{FFFF}</b>",
            '<?xml <!DOCTYPE x> ?><b/>',
            "<?xml version='1.0' encoding='utf-16'?><b/>",
            "<?xml version='1.0' encoding='ISO-8859-1'?><b/>",
            '<b>' . str_repeat('<c/>', 4096) . '</b>',
            '<b' . implode('', array_map(static fn (int $k): string => " xmlns:p$k='u'", range(1, 1025))) . '/>',
            '<b>' . str_repeat("<c a='1' b='2' d='3'/>", 2800) . '</b>',
        ] as $text) {
            try {
                \ProsodyHmacToken\Prebind::parse($text);
                self::fail("read: $text");
            } catch (\UnexpectedValueException) {
                self::addToAssertionCount(1);
            }
        }
        $el = \ProsodyHmacToken\Prebind::parse("<?xml version=\"1.0\" encoding='UTF-8' standalone='yes' ?><a xmlns='u:a' xmlns:p='u:p' p:x='1&amp;2' y=\"&#x41;\"><p:b>t<![CDATA[<c>]]>&#233;</p:b></a>");
        self::assertSame('{u:a}a', $el['tag']);
        self::assertSame(['{u:p}x' => '1&2', 'y' => 'A'], $el['attrs']);
        self::assertSame('{u:p}b', $el['children'][0]['tag']);
        self::assertSame("t<c>\u{e9}", $el['children'][0]['text']);
    }

    public function testAMechanismsNameIsItsTextAlone(): void
    {
        $answer = "<body xmlns='http://jabber.org/protocol/httpbind' sid='s'><features xmlns='http://etherx.jabber.org/streams'>"
            . "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SASL-<x/>HMAC</mechanism></mechanisms></features></body>";
        $sent = 0;
        try {
            Token::prebind('http://127.0.0.1:1/http-bind', self::genuine()['jid'], self::fresh(300), ['transport' => static function () use (&$sent, $answer): array {
                $sent++;
                return [200, $answer];
            }]);
            self::fail('no error');
        } catch (PrebindError $e) {
            self::assertSame('unproven', $e->kind, $e->getMessage());
        }
        self::assertSame(1, $sent);
    }

    public function testTheReaderRunsInLinearTimeAndCapsAnAnswer(): void
    {
        $n = 310;
        // the review's answers: N xmlns:pK declarations on <body>, M children declaring xmlns=''
        foreach ([[5000, 10000], [20000, 30000], [1000, 4000]] as [$nd, $nk]) {
            $decl = '';
            for ($k = 0; $k < $nd; $k++) {
                $decl .= " xmlns:p$k='u$k'";
            }
            $doc = "<body xmlns='http://jabber.org/protocol/httpbind' sid='s'$decl><f>" . str_repeat("<a xmlns=''/>", $nk) . '</f></body>';
            $t = self::cpuSeconds();
            try {
                Token::prebind('http://127.0.0.1:1/http-bind', self::genuine()['jid'], self::fresh($n++), ['timeout' => 60, 'transport' => static fn (): array => [200, $doc]]);
                self::fail('no error');
            } catch (PrebindError $e) {
                self::assertSame('transport', $e->kind, $e->getMessage());
            }
            self::assertLessThan(1.0, self::cpuSeconds() - $t, "$nd $nk");
        }
        // just within the caps: 511 declarations on <body>, 4090 children of which 511 declare, read
        // (no transport error)
        $decl = '';
        for ($k = 0; $k < 511; $k++) {
            $decl .= " xmlns:p$k='u$k'";
        }
        $doc = "<body xmlns='http://jabber.org/protocol/httpbind' sid='s'$decl><f>" . str_repeat("<a xmlns=''/>", 511) . str_repeat('<a/>', 3579) . '</f></body>';
        $t = self::cpuSeconds();
        try {
            Token::prebind('http://127.0.0.1:1/http-bind', self::genuine()['jid'], self::fresh($n++), ['timeout' => 60, 'transport' => static fn (): array => [200, $doc]]);
            self::fail('no error');
        } catch (PrebindError $e) {
            self::assertSame('unproven', $e->kind, $e->getMessage());
        }
        self::assertLessThan(0.6, self::cpuSeconds() - $t);
    }

    /** This process's CPU seconds (user and system): what the reader costs, whatever else runs. */
    private static function cpuSeconds(): float
    {
        $u = getrusage();
        return $u['ru_utime.tv_sec'] + $u['ru_utime.tv_usec'] / 1e6 + $u['ru_stime.tv_sec'] + $u['ru_stime.tv_usec'] / 1e6;
    }

    public function testHttpIsRefusedUnlessTheHostIsLoopbackOrInsecureHttpIsSet(): void
    {
        $sent = 0;
        $transport = static function () use (&$sent): array {
            $sent++;
            throw new \RuntimeException('connection refused');
        };
        $n = 330;
        foreach (['http://10.0.0.5/http-bind', 'http://example.org:5280/http-bind', 'http://127.0.0.1.example.org/', 'http://[::2]/',
            'http://localhost.example/', 'http://127.256.0.1/', 'http://127.0.0.01/'] as $url) {
            try {
                Token::prebind($url, self::genuine()['jid'], self::fresh($n++), ['transport' => $transport]);
                self::fail("no error for $url");
            } catch (TokenError $e) {
                self::assertSame('settings', $e->kind, $url);
                self::assertStringContainsString('insecure_http', $e->getMessage());
            }
        }
        foreach (['http://u:p@127.0.0.1/http-bind', "http://127.0.0.1/http bind", "http://127.0.0.1/\u{e9}"] as $url) {
            try {
                Token::prebind($url, self::genuine()['jid'], self::fresh($n++), ['transport' => $transport]);
                self::fail("no error for $url");
            } catch (TokenError $e) {
                self::assertSame('settings', $e->kind, $url);
            }
        }
        try {
            Token::prebind('https://10.0.0.5/', self::genuine()['jid'], self::fresh($n++), ['transport' => $transport, 'insecure_http' => 1]);
            self::fail('no error');
        } catch (TokenError $e) {
            self::assertSame('settings', $e->kind);
        }
        self::assertSame(0, $sent);
        $allowed = [
            ['http://127.0.0.1:5280/http-bind', []], ['http://127.9.8.7/', []], ['http://[::1]:5280/', []], ['http://LocalHost/', []],
            ['https://10.0.0.5/http-bind', []], ['http://10.0.0.5/http-bind', ['insecure_http' => true]],
        ];
        foreach ($allowed as [$url, $options]) {
            try {
                Token::prebind($url, self::genuine()['jid'], self::fresh($n++), ['transport' => $transport] + $options);
                self::fail('no error');
            } catch (PrebindError $e) {
                self::assertSame('transport', $e->kind, $url);
            }
        }
        self::assertSame(count($allowed), $sent);
    }

    // -----------------------------------------------------------------------------------------
    // The default transport against real local servers (tests/prebind-http-server.php)

    /** @var resource|null */
    private $server = null;
    private string $log = '';

    /** Starts the server in $mode; returns its port. */
    private function startServer(string $mode, string $arg = ''): int
    {
        $this->log = sys_get_temp_dir() . '/prebind-test-' . bin2hex(random_bytes(6));
        touch($this->log);
        $cmd = [PHP_BINARY, '-n', __DIR__ . '/prebind-http-server.php', $mode, $arg, $this->log];
        $this->server = proc_open($cmd, [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['file', '/dev/null', 'w']], $pipes);
        self::assertIsResource($this->server);
        $port = (int) fgets($pipes[1]);
        self::assertGreaterThan(0, $port, 'the server did not start');
        return $port;
    }

    protected function tearDown(): void
    {
        if ($this->server !== null) {
            proc_terminate($this->server);
            proc_close($this->server);
            $this->server = null;
        }
        if ($this->log !== '' && is_file($this->log)) {
            unlink($this->log);
        }
    }

    /** prebind() through the default transport; returns the error and the seconds it took. */
    private static function viaHttp(string $url, int $n, float $timeout = 1.0): array
    {
        $t = hrtime(true);
        try {
            Token::prebind($url, self::genuine()['jid'], self::fresh($n), ['timeout' => $timeout]);
            self::fail('no error');
        } catch (PrebindError $e) {
            return [$e, (hrtime(true) - $t) / 1e9];
        }
    }

    public function testATrickleEndsAtTheTimeout(): void
    {
        foreach (['trickle' => 400, 'trickle-body' => 401] as $mode => $n) {
            $port = $this->startServer($mode);
            [$e, $took] = self::viaHttp("http://127.0.0.1:$port/http-bind", $n);
            self::assertSame('transport', $e->kind);
            self::assertStringContainsString("timed out at 127.0.0.1:$port", $e->getMessage());
            // the trickle lasts hours: past the 1 s timeout only the deadline ends the call (the
            // bound leaves a loaded machine 3 s to wake it)
            self::assertTrue($took >= 0.95 && $took < 4.0, "$mode: $took s");
            $this->tearDown();
        }
    }

    public function testAHeaderFloodIsATransportError(): void
    {
        $port = $this->startServer('flood');
        [$e, $took] = self::viaHttp("http://127.0.0.1:$port/http-bind", 410, 5.0);
        self::assertSame('transport', $e->kind);
        self::assertStringContainsString('headers are over', $e->getMessage());
        self::assertLessThan(2.0, $took);
    }

    public function testAnAnswerOverTheCapIsATransportError(): void
    {
        $port = $this->startServer('huge');
        [$e] = self::viaHttp("http://127.0.0.1:$port/http-bind", 411, 5.0);
        self::assertSame('transport', $e->kind);
        self::assertStringContainsString('over 1048576 bytes', $e->getMessage());
    }

    public function testTheAnswerIsReadByLengthChunksOrToTheEnd(): void
    {
        $answer = "<body xmlns='http://jabber.org/protocol/httpbind' type='terminate' condition='remote-stream-error'/>";
        foreach (['length' => 420, 'chunked' => 421, 'close' => 422] as $mode => $n) {
            $port = $this->startServer($mode, $answer);
            [$e, $took] = self::viaHttp("http://127.0.0.1:$port/http-bind?x=1", $n, 5.0);
            self::assertSame('transport', $e->kind);
            self::assertStringContainsString('terminated the BOSH session (remote-stream-error)', $e->getMessage(), $mode);
            self::assertLessThan(1.0, $took, "$mode: it waited for the end of the connection");
            $head = (string) file_get_contents($this->log);
            self::assertStringStartsWith("POST /http-bind?x=1 HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n", $head);
            self::assertStringContainsString("\r\nConnection: close", $head);
            self::assertMatchesRegularExpression('/\r\nContent-Length: [1-9][0-9]*(\r\n|\n)/', $head);
            $this->tearDown();
        }
    }

    public function testAnAnswerOutOfHttpIsATransportError(): void
    {
        $ok = "HTTP/1.1 200 OK\r\n";
        $cases = [
            [$ok . implode('', array_map(static fn (int $k): string => "X-$k: v\r\n", range(1, 65))) . "\r\n", 'over 64 header lines'],
            ["HTTP/2 200\r\nContent-Length: 0\r\n\r\n", 'not HTTP/1.x'],
            ["HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", 'not HTTP/1.x'],
            [$ok . "Content-Length: 0\r\n folded\r\n\r\n", 'a malformed header line'],
            [$ok . "Content-Length 0\r\n\r\n", 'a malformed header line'],
            [$ok . "Content-Length: 1x\r\n\r\n", 'a malformed Content-Length'],
            [$ok . "Content-Length: -1\r\n\r\n", 'a malformed Content-Length'],
            [$ok . "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 'a malformed Content-Length'],
            [$ok . "Transfer-Encoding: gzip, chunked\r\n\r\n", 'a transfer coding other than chunked'],
            [$ok . "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 'a transfer coding other than chunked'],
            [$ok . "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 'both Content-Length and chunked'],
            [$ok . "Content-Length: 500\r\n\r\n<body/>", 'closed in the body'],
            [$ok . "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", 'closed in the body'],
            [$ok . "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 'a malformed chunk'],
            [$ok . "Transfer-Encoding: chunked\r\n\r\n3\r\nabcXY3\r\nabc\r\n0\r\n\r\n", 'a malformed chunk'],
            [$ok . "Transfer-Encoding: chunked\r\n\r\n" . str_repeat('1', 2000), 'a malformed chunk'],
            [$ok . "Transfer-Encoding: chunked\r\n\r\nFFFFFF\r\nabc", 'an answer over 1048576 bytes'],
            [$ok . "Content-Length: 1048577\r\n\r\n", 'an answer over 1048576 bytes'],
            [$ok . 'X: y' . "\r\n", 'closed in the headers'],
            ["HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n", 'answered HTTP 302'],
        ];
        foreach ($cases as $k => [$raw, $why]) {
            $port = $this->startServer('raw', $raw);
            [$e] = self::viaHttp("http://127.0.0.1:$port/http-bind", 440 + $k, 5.0);
            self::assertSame('transport', $e->kind);
            self::assertStringContainsString($why, $e->getMessage(), "case $k");
            $this->tearDown();
        }
    }

    public function testTlsIsVerifiedAndItsFailureSaysWhy(): void
    {
        if (!extension_loaded('openssl')) {
            self::markTestSkipped('no openssl extension');
        }
        $key = openssl_pkey_new(['private_key_bits' => 2048, 'private_key_type' => OPENSSL_KEYTYPE_RSA]);
        self::assertNotFalse($key);
        $config = sys_get_temp_dir() . '/prebind-test-' . bin2hex(random_bytes(6)) . '.cnf';
        file_put_contents($config, "[req]\ndistinguished_name=dn\n[dn]\n[san]\nsubjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:TRUE\n");
        $csr = openssl_csr_new(['commonName' => '127.0.0.1'], $key, ['config' => $config, 'digest_alg' => 'sha256']);
        $cert = openssl_csr_sign($csr, null, $key, 1, ['config' => $config, 'x509_extensions' => 'san', 'digest_alg' => 'sha256']);
        unlink($config);
        openssl_x509_export($cert, $certPem);
        openssl_pkey_export($key, $keyPem);
        $pem = sys_get_temp_dir() . '/prebind-test-' . bin2hex(random_bytes(6)) . '.pem';
        file_put_contents($pem, $certPem . $keyPem);
        $ca = getenv('SSL_CERT_FILE');
        try {
            $port = $this->startServer('tls', $pem);
            [$e] = self::viaHttp("https://127.0.0.1:$port/http-bind", 430, 5.0); // an unknown issuer
            self::assertSame('transport', $e->kind);
            self::assertStringContainsString('certificate verify failed', $e->getMessage());
            putenv("SSL_CERT_FILE=$pem"); // OpenSSL's default trust store, read at each verification
            [$e] = self::viaHttp("https://127.0.0.1:$port/http-bind", 431, 5.0);
            self::assertStringContainsString('terminated the BOSH session', $e->getMessage()); // trusted, and read
            [$e] = self::viaHttp("https://localhost:$port/http-bind", 432, 5.0); // not the certificate's name
            self::assertSame('transport', $e->kind);
            self::assertStringNotContainsString('terminated the BOSH session', $e->getMessage());
        } finally {
            putenv($ca === false ? 'SSL_CERT_FILE' : "SSL_CERT_FILE=$ca");
            unlink($pem);
        }
    }
}
