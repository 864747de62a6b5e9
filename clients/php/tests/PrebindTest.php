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
            Token::prebind('http://x/', $c['jid'], $c['token'], ['transport' => $server]);
            self::fail('no error');
        } catch (PrebindError $e) {
            self::assertStringContainsString('script expects auth', (string) $server->broken);
        }
        $again = new ScriptedServer($c, self::vectors()['sid']);
        try {
            Token::prebind('http://x/', $c['jid'], $c['token'], ['transport' => $again]);
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
                Token::prebind('http://x/', $jid, $token, $options + ['transport' => $server]);
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

    public function testTheTimeoutBoundsEveryRequestAndTheWait(): void
    {
        $c = self::genuine();
        $lefts = [];
        $waits = [];
        $slow = static function (string $data, float $left) use (&$lefts, &$waits): array {
            $lefts[] = $left;
            preg_match("/\\swait='(\\d+)'/", $data, $m);
            $waits[] = $m[1] ?? null;
            throw new \RuntimeException('timed out at 127.0.0.1:1');
        };
        try {
            Token::prebind('http://x/', $c['jid'], self::fresh(4), ['transport' => $slow, 'timeout' => 2.5]);
            self::fail('no error');
        } catch (PrebindError $e) {
            self::assertSame('transport', $e->kind);
            self::assertStringContainsString('timed out', $e->getMessage());
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
            Token::prebind('http://x/', $c['jid'], self::fresh(5), ['transport' => $slow, 'timeout' => 7]);
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
        ] as $text) {
            try {
                \ProsodyHmacToken\Prebind::parse($text);
                self::fail("read: $text");
            } catch (\UnexpectedValueException) {
                self::addToAssertionCount(1);
            }
        }
        $el = \ProsodyHmacToken\Prebind::parse("<?xml version='1.0'?><a xmlns='u:a' xmlns:p='u:p' p:x='1&amp;2' y=\"&#x41;\"><p:b>t<![CDATA[<c>]]>&#233;</p:b></a>");
        self::assertSame('{u:a}a', $el['tag']);
        self::assertSame(['{u:p}x' => '1&2', 'y' => 'A'], $el['attrs']);
        self::assertSame('{u:p}b', $el['children'][0]['tag']);
        self::assertSame("t<c>\u{e9}", $el['children'][0]['text']);
    }
}
