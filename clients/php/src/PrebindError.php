<?php

declare(strict_types=1);

namespace ProsodyHmacToken;

/**
 * Token::prebind() opened no session: the browser has nothing to attach to (docs/prebind.md).
 *
 * `kind` says what happened:
 *  - "refused": Prosody refused the login with a SASL failure, in `condition` (not-authorized:
 *    another token_secret, another user's or a used token; credentials-expired: this machine's
 *    clock or otp_seed; temporary-auth-failure); mint a new token to try again;
 *  - "unproven": the server did not prove that it holds the token secret (no SASL-HMAC offered, a
 *    missing or wrong proof) or it bound another JID: the URL does not reach the Prosody this web
 *    app shares token_secret with; nothing that would log in was sent;
 *  - "transport": no usable answer: no connection, the timeout, an HTTP status other than 200, not
 *    a BOSH body, a terminated session, or an answer out of protocol.
 * The message never contains the token or its parts.
 */
final class PrebindError extends \RuntimeException
{
    public const REFUSED = 'refused';
    public const UNPROVEN = 'unproven';
    public const TRANSPORT = 'transport';

    /**
     * @param string      $kind      "refused", "unproven" or "transport"
     * @param string      $message   what happened (never the token)
     * @param string|null $condition the SASL condition, for "refused"
     */
    public function __construct(public readonly string $kind, string $message, public readonly ?string $condition = null)
    {
        parent::__construct($message);
    }
}
