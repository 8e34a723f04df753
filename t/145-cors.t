#!/usr/bin/perl

# ldseg_cors: browsers on other origins.
#
# - "nginx -t" refuses what is not an origin, "*" or "off" among origins,
#   a second ldseg_cors in one location, ldseg_cors outside a location;
# - a preflight (OPTIONS) from an allowed origin: 204 with
#   Access-Control-Allow-Origin echoing it, -Allow-Methods POST,
#   -Allow-Headers with what analytics.js sends (Content-Type,
#   Authorization, X-Retry-Count), -Max-Age, Vary: Origin; from another
#   origin: 403 origin_not_allowed without any allow header;
# - every kind of answer to an allowed origin carries the allow header
#   once, with Vary: Origin and Retry-After exposed: 200 (ldseg's own and an
#   ldseg_pass location's), 400, 401, 404, 405, 413, 503;
# - origins compare as browsers send them (the configured ones in any case,
#   with or without the default port); a near miss, another origin or no
#   Origin gets no allow header (but Vary: Origin);
# - "*" answers "*" to everyone; without ldseg_cors (or with "off") there is
#   no CORS header and OPTIONS is 405.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(76);
my $mock = $t->mock;

###############################################################################
# nginx -t

sub conf {
    my ($loc, %c) = @_;

    my $http = $c{http} // '';

    return <<"EOF";
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_client_side_id cors-test;
    $http

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            $loc
        }
    }
}
EOF
}

sub valid {
    my ($loc, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $t->conf_ok(conf($loc), $name);
}

sub fails {
    my ($loc, $re, $name, %c) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $t->conf_fails(conf($loc, %c), $re, $name);
}

valid('ldseg_cors *;', 'ldseg_cors *');
valid('ldseg_cors off;', 'ldseg_cors off');
valid('ldseg_cors https://app.example.com http://localhost:3000'
      . ' HTTP://WWW.Example.ORG:443 http://[::1]:8080 http://127.0.0.1:80'
      . ' https://a-b.example.co.uk:08443;', 'ldseg_cors with origins');
valid('location /v1/inner/ { ldseg on; ldseg_cors off; } ldseg_cors *;',
      'ldseg_cors off in a nested location');

fails('ldseg_cors;', qr/invalid number of arguments in "ldseg_cors"/,
      'ldseg_cors without a value');
fails('ldseg_cors * https://app.example.com;',
      qr/"ldseg_cors" "\*" must be its only value/, '* among origins');
fails('ldseg_cors https://app.example.com off;',
      qr/"ldseg_cors" "off" must be its only value/, 'off among origins');
fails('ldseg_cors app.example.com;',
      qr/invalid "ldseg_cors" origin "app\.example\.com": an origin is/,
      'an origin without a scheme');
fails('ldseg_cors ftp://app.example.com;',
      qr/invalid "ldseg_cors" origin "ftp:/, 'an origin with another scheme');
fails('ldseg_cors null;', qr/invalid "ldseg_cors" origin "null"/,
      'the "null" origin');
fails('ldseg_cors https://app.example.com/;',
      qr/origin "https:\/\/app\.example\.com\/": an origin has no path/,
      'an origin with a path ("/")');
fails('ldseg_cors https://app.example.com/v1;',
      qr/an origin has no path/, 'an origin with a path');
fails('ldseg_cors https://*.example.com;',
      qr/origin "https:\/\/\*\.example\.com": invalid host/,
      'a wildcard origin');
fails('ldseg_cors https://user@app.example.com;',
      qr/origin "https:\/\/user\@app\.example\.com"/,
      'an origin with a user');
fails('ldseg_cors https://;', qr/invalid "ldseg_cors" origin "https:\/\/"/,
      'an origin without a host');
fails('ldseg_cors http://[fe80::zz]:80;', qr/invalid host/,
      'an IPv6 origin that is not an address');
fails('ldseg_cors http://app.example.com:0;', qr/invalid port/, 'port 0');
fails('ldseg_cors http://app.example.com:65536;', qr/invalid port/,
      'port 65536');
fails('ldseg_cors http://app.example.com:;', qr/invalid port/,
      'an empty port');
fails('ldseg_cors *; ldseg_cors *;', qr/"ldseg_cors" directive is duplicate/,
      'ldseg_cors twice');
fails('', qr/"ldseg_cors" directive is not allowed here/,
      'ldseg_cors in http{}', http => 'ldseg_cors *;');

###############################################################################
# the answers

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;

    map $ldseg_write_key $ld_id {
        default  "";
        wk-cors  CORS-ID;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        ldseg_client_side_id $ld_id;

        location /v1/ {
            ldseg on;
            ldseg_cors https://app.example.com HTTP://LocalHost:3000
                       http://[::1]:8080 https://www.example.com:443;

            location /v1/off/ {
                ldseg on;
                ldseg_cors off;
            }
        }

        location /any/ {
            ldseg on;
            ldseg_cors *;
        }

        location /none/ {
            ldseg on;
        }

        location /pass/ {
            ldseg on;
            ldseg_cors https://app.example.com;
            ldseg_pass @up;
        }

        location @up {
            return 200 '{"success":true,"upstream":true}';
        }

        location /small/ {
            ldseg on;
            ldseg_cors https://app.example.com;
            client_max_body_size 1k;
        }
    }
}
EOF

$t->run;

my $APP = 'https://app.example.com';
my $AUTH = Test::Ldseg::basic_auth('wk-cors');
my $TRACK = '{"userId":"u1","event":"CORS","timestamp":"2024-01-02T03:04:05Z"}';

sub req {
    my ($method, $path, $origin, $body, @h) = @_;
    push @h, Origin => $origin if defined $origin;
    return $t->http_request(method => $method, path => $path, body => $body,
                            headers => \@h);
}

sub post {
    my ($path, $origin, $body, @h) = @_;
    return req('POST', $path, $origin, $body,
               'Content-Type' => 'text/plain', @h);
}

sub preflight {
    my ($path, $origin) = @_;
    return req('OPTIONS', $path, $origin, undef,
               'Access-Control-Request-Method' => 'POST',
               'Access-Control-Request-Headers'
                   => 'authorization,content-type');
}

sub code {
    my ($body) = @_;
    my $j = Test::Ldseg::json($body // '') || {};
    return $j->{code} // '-';
}

# the headers an answer to an allowed origin carries, as one line

sub cors {
    my ($h) = @_;
    return join ' | ', map { "$_: " . ($h->{$_} // '-') }
        'access-control-allow-origin', 'vary',
        'access-control-expose-headers';
}

sub allowed {
    my ($origin) = @_;
    return "access-control-allow-origin: $origin | vary: Origin"
           . " | access-control-expose-headers: Retry-After";
}

my $NONE = 'access-control-allow-origin: - | vary: Origin'
           . ' | access-control-expose-headers: -';

# preflight from an allowed origin

my ($code, $h, $body) = preflight('/v1/t', $APP);
is($code, 204, 'preflight: 204');
is(cors($h), allowed($APP), 'preflight: allow origin, Vary, exposed');
is($h->{'access-control-allow-methods'}, 'POST', 'preflight: methods');
is($h->{'access-control-allow-headers'},
   'Content-Type, Authorization, X-Retry-Count',
   'preflight: the headers analytics.js sends');
is($h->{'access-control-max-age'}, '7200', 'preflight: max age');
is($body, '', 'preflight: no body');

# preflight from another origin

($code, $h, $body) = preflight('/v1/t', 'https://evil.example.com');
is("$code " . code($body), '403 origin_not_allowed',
   'preflight from another origin: 403 origin_not_allowed');
is(cors($h), $NONE, 'preflight from another origin: no allow header');
is($h->{'access-control-allow-methods'}, undef,
   'preflight from another origin: no methods');

# every kind of answer

($code, $h, $body) = post('/v1/track', $APP, $TRACK, Authorization => $AUTH);
is("$code " . cors($h), '200 ' . allowed($APP), '200: allow origin');

($code, $h, $body) = post('/v1/batch', $APP,
    '{"batch":[{"type":"track","userId":"u"},' . substr($TRACK, 0, -1)
    . ',"type":"track"}]}', Authorization => $AUTH);
like($body, qr/"rejected":\[\{"index":0/, '200 with rejected messages');
is(cors($h), allowed($APP), '200 with rejected messages: allow origin');

($code, $h, $body) = post('/v1/t', $APP, 'not json');
is("$code " . code($body), '400 invalid_json', '400 invalid_json');
is(cors($h), allowed($APP), '400: allow origin');

($code, $h, $body) = post('/v1/t', $APP,
    '{"userId":"u","event":"e","properties":{"p":"' . ('x' x 40000) . '"}}');
is("$code " . code($body), '400 too_large', '400 too_large');
is(cors($h), allowed($APP), '400 too_large: allow origin');

($code, $h, $body) = post('/v1/track', $APP, $TRACK,
    Authorization => Test::Ldseg::basic_auth('wk-unknown'));
is("$code " . code($body), '401 unknown_write_key', '401 unknown_write_key');
is(cors($h), allowed($APP), '401: allow origin');

($code, $h, $body) = post('/v1/nope', $APP, $TRACK);
is("$code " . code($body), '404 unknown_endpoint', '404 unknown_endpoint');
is(cors($h), allowed($APP), '404: allow origin');

($code, $h, $body) = req('GET', '/v1/track', $APP);
is("$code " . code($body), '405 method_not_allowed', '405 method_not_allowed');
is(cors($h), allowed($APP), '405: allow origin');
is($h->{allow}, 'POST, OPTIONS', '405: Allow: POST, OPTIONS');

($code, $h, $body) = post('/small/t', $APP,
    '{"userId":"u","event":"e","p":"' . ('x' x 2000) . '"}');
is("$code " . code($body), '413 too_large',
   '413: body above client_max_body_size');
is(cors($h), allowed($APP), '413: allow origin');

($code, $h, $body) = post('/pass/track', $APP, $TRACK,
                          Authorization => $AUTH);
is("$code $body", '200 {"success":true,"upstream":true}',
   'ldseg_pass: the passed location answers');
is(cors($h), allowed($APP), 'ldseg_pass answer: allow origin, once');

# origins as browsers send them

for my $o ('http://localhost:3000', 'http://[::1]:8080',
           'https://www.example.com')
{
    ($code, $h) = post('/v1/t', $o, 'not json');
    is(cors($h), allowed($o), "origin $o allowed as configured");
}

for my $o ('http://localhost:3001', 'http://app.example.com',
           'https://app.example.com.evil.com', 'https://app.example.co',
           'null')
{
    ($code, $h) = post('/v1/t', $o, 'not json');
    is(cors($h), $NONE, "origin $o: no allow header");
}

($code, $h) = post('/v1/track', 'https://evil.example.com', $TRACK,
                   Authorization => $AUTH);
is("$code " . cors($h), "200 $NONE",
   'a POST from another origin is answered, without allow header');

($code, $h) = post('/v1/t', undef, 'not json');
is(cors($h), $NONE, 'no Origin: no allow header, Vary: Origin');

($code, $h) = preflight('/v1/t', undef);
is($code, 204, 'OPTIONS without Origin: 204');
is(cors($h), $NONE, 'OPTIONS without Origin: no allow header');

# ldseg_cors *

my $ANY = 'access-control-allow-origin: * | vary: -'
          . ' | access-control-expose-headers: Retry-After';

($code, $h) = preflight('/any/t', 'https://anywhere.example');
is("$code " . cors($h), "204 $ANY", '*: preflight from any origin');
is($h->{'access-control-allow-headers'},
   'Content-Type, Authorization, X-Retry-Count', '*: preflight headers');

($code, $h, $body) = post('/any/t', 'https://anywhere.example', 'not json');
is("$code " . cors($h), "400 $ANY", '*: an error answer');

($code, $h) = post('/any/track', undef, $TRACK, Authorization => $AUTH);
is("$code " . cors($h), "200 $ANY", '*: no Origin');

# no ldseg_cors, ldseg_cors off

my $OFF = 'access-control-allow-origin: - | vary: -'
          . ' | access-control-expose-headers: -';

for my $path ('/none/t', '/v1/off/t') {
    ($code, $h, $body) = preflight($path, $APP);
    is("$code " . code($body), '405 method_not_allowed',
       "$path: OPTIONS is 405");
    is($h->{allow}, 'POST', "$path: Allow: POST");
    is(cors($h), $OFF, "$path: no CORS header on 405");

    ($code, $h) = post($path, $APP, 'not json');
    is("$code " . cors($h), "400 $OFF", "$path: no CORS header on 400");
}

# the accepted tracks (ldseg's own, in a batch, passed, from another
# origin, with *): CORS changes nothing of what is sent

is($mock->wait_events(5, 10), 5, 'LaunchDarkly got the 5 accepted tracks');

###############################################################################
# 503 (queue full): with ldseg_queue_limit 1 every event is refused

$t->stop;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;
    ldseg_queue_limit 1;
    ldseg_retry_after 7s;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id CORS-FULL;
            ldseg_cors https://app.example.com;
        }
    }
}
EOF

$t->run;

($code, $h, $body) = post('/v1/track', $APP, $TRACK);
is("$code " . code($body), '503 queue_full', '503 queue_full');
is(cors($h), allowed($APP), '503: allow origin');
is($h->{'retry-after'}, '7', '503: Retry-After, exposed to the page');

###############################################################################
