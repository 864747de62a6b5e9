<?php

/*
 * PHPUnit's bootstrap: Composer's autoloader after `composer install`, else a PSR-4 loader for src/
 * (Debian's phpunit needs no vendor/ directory).
 */

declare(strict_types=1);

if (is_file(__DIR__ . '/../vendor/autoload.php')) {
    require __DIR__ . '/../vendor/autoload.php';
} else {
    spl_autoload_register(static function (string $class): void {
        $prefix = 'ProsodyHmacToken\\';
        if (strncmp($class, $prefix, strlen($prefix)) === 0) {
            $file = __DIR__ . '/../src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
            if (is_file($file)) {
                require $file;
            }
        }
    });
}

ini_set('zend.exception_ignore_args', '0'); // so the trace checks see arguments if they leak
