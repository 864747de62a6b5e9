<?php

declare(strict_types=1);

namespace ProsodyHmacToken;

/**
 * What Token refuses: an argument it will not mint or verify with.
 *
 * `kind` says which: "jid" (not a bare JID Prosody accepts, or a non-ASCII username not passed
 * as prepared), "nonce" (an explicit nonce that is not exactly nonce_digits ASCII digits), "token"
 * (prebind() was given something that is not a token, or a token this process has tried) or
 * "settings" (digits, step, nonce_digits or skew out of range, an unknown or mistyped option,
 * an empty secret, an otp_seed that is not base32). Messages never contain a secret or the seed.
 */
final class TokenError extends \InvalidArgumentException
{
    public const JID = 'jid';
    public const NONCE = 'nonce';
    public const TOKEN = 'token';
    public const SETTINGS = 'settings';

    /**
     * @param string $kind    "jid", "nonce", "token" or "settings"
     * @param string $message what is wrong (never the secret or the seed)
     */
    public function __construct(public readonly string $kind, string $message)
    {
        parent::__construct($message);
    }
}
