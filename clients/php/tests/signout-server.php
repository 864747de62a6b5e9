<?php

/*
 * The router of the `php -S` server SignoutTest starts: appends each request (method, path,
 * content type, Host, body) as a JSON line to SIGNOUT_TEST_DIR/requests and answers the HTTP status
 * written in SIGNOUT_TEST_DIR/status (a Location header with it when it is a redirect).
 */

declare(strict_types=1);

$dir = (string) getenv('SIGNOUT_TEST_DIR');
file_put_contents($dir . '/requests', json_encode([
    'method' => $_SERVER['REQUEST_METHOD'],
    'path' => $_SERVER['REQUEST_URI'],
    'type' => $_SERVER['CONTENT_TYPE'] ?? null,
    'host' => $_SERVER['HTTP_HOST'] ?? null,
    'body' => file_get_contents('php://input'),
]) . "\n", FILE_APPEND | LOCK_EX);
$status = (int) file_get_contents($dir . '/status');
http_response_code($status);
if ($status >= 300 && $status < 400) {
    header('Location: http://127.0.0.1:9/elsewhere');
}
header('Content-Type: text/plain');
echo $status === 200 ? 'accepted' : 'refused';
return true;
