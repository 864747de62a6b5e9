<?php

declare(strict_types=1);

namespace ProsodyHmacToken;

/**
 * Prosody did not accept a sign-out request (Token::signout): the user may still be signed in.
 *
 * `kind` says what happened: "refused" (Prosody answered 403: stale — check this machine's clock —,
 * replayed, for another host, badly signed — another token_secret — or over the user's rate limit;
 * Prosody's log says which), "http" (another HTTP status, in `status`: 404, the URL does not reach
 * the sign-out endpoint — the path, the Host, or token_signout is not on for the host —; 500,
 * Prosody ended the sessions but could not store the sign-out: call signout again) or
 * "network" (no answer: the connection failed or timed out, TLS did not verify, or PHP cannot open
 * URLs). The message never contains the request (valid for 60 s) or the secret.
 */
final class SignoutError extends \RuntimeException
{
    public const REFUSED = 'refused';
    public const HTTP = 'http';
    public const NETWORK = 'network';

    /**
     * @param string   $kind    "refused", "http" or "network"
     * @param string   $message what happened (never the request or the secret)
     * @param int|null $status  the HTTP status, for "refused" and "http"
     */
    public function __construct(public readonly string $kind, string $message, public readonly ?int $status = null)
    {
        parent::__construct($message);
    }
}
