<?php

/*
 * A misbehaving HTTP server for PrebindTest (php -S cannot trickle): listens on 127.0.0.1 at a free
 * port, prints the port, and answers each connection in turn the way argv[1] says:
 * - trickle: the status line, headers and body one byte every 0.3 s;
 * - trickle-body: the headers at once, then the body one byte every 0.3 s;
 * - flood: a status line, then header lines without end;
 * - length, chunked, close: the BOSH answer in argv[2] with a Content-Length, in chunks (a few
 *   bytes each, with an extension and a trailer), or to the end of the connection;
 * - huge: a Content-Length over 1 MiB;
 * - raw: argv[2] as it is, then the end of the connection;
 * - tls: over TLS with the certificate and key in the PEM file argv[2], a terminated session.
 * It appends each request's head (request line and headers) to the file argv[3], if given.
 */

declare(strict_types=1);

$mode = $argv[1] ?? 'trickle';
$answer = $argv[2] ?? '';
$log = $argv[3] ?? '';
$context = stream_context_create($mode === 'tls' ? ['ssl' => ['local_cert' => $answer]] : []);
$server = stream_socket_server(($mode === 'tls' ? 'tls' : 'tcp') . '://127.0.0.1:0', $errno, $errstr,
    STREAM_SERVER_BIND | STREAM_SERVER_LISTEN, $context);
if ($server === false) {
    fwrite(STDERR, "$errstr\n");
    exit(1);
}
echo explode(':', (string) stream_socket_get_name($server, false))[1], "\n";
fflush(STDOUT);

for (;;) {
    $c = @stream_socket_accept($server, -1);
    if ($c === false) {
        continue;
    }
    $request = '';
    while (!str_contains($request, "\r\n\r\n") && !feof($c)) {
        $request .= (string) fread($c, 8192);
    }
    if ($log !== '') {
        file_put_contents($log, substr($request, 0, (int) strpos($request, "\r\n\r\n")) . "\n\n", FILE_APPEND);
    }
    $body = "<body xmlns='http://jabber.org/protocol/httpbind' type='terminate' condition='policy-violation'/>";
    @set_time_limit(0);
    switch ($mode) {
        case 'trickle':
        case 'trickle-body':
            $head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
            if ($mode === 'trickle-body') {
                @fwrite($c, $head);
                $head = '';
            }
            $all = $head . str_repeat(' ', 100000);
            for ($k = 0; $k < strlen($all); $k++) {
                if (@fwrite($c, $all[$k]) !== 1) {
                    break;
                }
                usleep(300000);
            }
            break;
        case 'flood':
            @fwrite($c, "HTTP/1.1 200 OK\r\n");
            $lines = str_repeat('X-A: ' . str_repeat('a', 1000) . "\r\n", 10);
            for ($k = 0; $k < 200000; $k++) {
                if (@fwrite($c, $lines) === false) {
                    break;
                }
            }
            break;
        case 'tls':
            $answer = $body;
            // no break
        case 'length':
            $answer = $answer === '' ? $body : $answer;
            @fwrite($c, "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: " . strlen($answer) . "\r\n\r\n" . $answer);
            break;
        case 'chunked':
            @fwrite($c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            foreach (str_split($answer, 7) as $k => $piece) {
                @fwrite($c, dechex(strlen($piece)) . ($k === 1 ? ';ext=1' : '') . "\r\n$piece\r\n");
                usleep(1000);
            }
            @fwrite($c, "0\r\nX-Trailer: t\r\n\r\n");
            usleep(2000000); // the client must not wait for the end of the connection
            break;
        case 'close':
            @fwrite($c, "HTTP/1.0 200 OK\r\n\r\n" . $answer);
            break;
        case 'raw':
            @fwrite($c, $answer);
            break;
        case 'huge':
            @fwrite($c, "HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n" . str_repeat(' ', 65536));
            break;
    }
    @fclose($c);
}
