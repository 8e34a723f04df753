#!/usr/bin/perl

# Answers a client can read: a body over client_max_body_size gets ldseg's
# JSON 413 (Content-Length or chunked, found at once or while reading); a
# request with only page/screen/group messages and an unknown write key
# gets 401 like any other; $ldseg_write_key keeps the body's writeKey in
# the ldseg_pass location; an explicit client_body_buffer_size is kept,
# even when it is nginx's default written out.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use IO::Socket::INET;
use JSON::PP;
use Time::HiRes qw(sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(30);

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;

    map $ldseg_write_key $ld_id {
        default      "";
        key-known    KNOWN-ID;
    }

    log_format pass '$uri [$ldseg_write_key]';

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        client_max_body_size 64k;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id $ld_id;
            add_header X-Body-File "[$request_body_file]" always;
        }

        location /pass/v1/ {
            ldseg on;
            ldseg_client_side_id $ld_id;
            ldseg_pass @after;
        }

        location @after {
            access_log %%TESTDIR%%/pass.log pass;
            add_header X-Pass-Key "[$ldseg_write_key]" always;
            return 204;
        }

        location /default/v1/ {
            client_body_buffer_size 8k;
            ldseg on;
            ldseg_client_side_id $ld_id;
            add_header X-Body-File "[$request_body_file]" always;
        }

        location /after/v1/ {
            ldseg on;
            ldseg_client_side_id $ld_id;
            client_body_buffer_size 12k;
            add_header X-Body-File "[$request_body_file]" always;
        }

        location /status {
            ldseg_status;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_8082%%;

        client_body_buffer_size 8k;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id $ld_id;
            add_header X-Body-File "[$request_body_file]" always;
        }
    }
}
EOF

$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2024-02-29T12:00:00Z';
my $known = Test::Ldseg::basic_auth('key-known');
my $unknown = Test::Ldseg::basic_auth('key-unknown');

sub code_of {
    my ($body) = @_;
    my $j = eval { $J->decode($body) };
    return ref $j eq 'HASH' ? ($j->{code} // '') : "not JSON: $body";
}

# a batch of about $kb KB of tracks

sub batch {
    my ($kb, $tag) = @_;
    my @m;
    my $len = 20;
    while ($len < $kb * 1024) {
        my $m = { type => 'track', userId => 'u', event => "$tag-" . @m,
                  timestamp => $TS, properties => { pad => 'x' x 400 } };
        $len += length($J->encode($m)) + 1;
        push @m, $m;
    }
    return $J->encode({ batch => \@m });
}

# 413 with Content-Length: nginx would answer before ldseg ever ran

my ($code, $h, $body) = $t->http_post('/v1/batch', batch(100, 'big'),
                                      Authorization => $known);
is($code, 413, 'Content-Length over client_max_body_size: 413');
like($h->{'content-type'} // '', qr{^application/json},
     '413: application/json');
is(code_of($body), 'too_large', '413: code too_large');
like($body, qr/^\{"success":false,/, '413: ldseg\'s error shape');

# 413 for a chunked body, all sent at once

sub chunked {
    my ($data, $size) = @_;
    my $out = '';
    while (length $data) {
        my $c = substr $data, 0, $size, '';
        $out .= sprintf("%x\r\n", length $c) . $c . "\r\n";
    }
    return $out . "0\r\n\r\n";
}

($code, $h, $body) = $t->http_request(method => 'POST', path => '/v1/batch',
    headers => [ 'Content-Type' => 'application/json',
                 'Transfer-Encoding' => 'chunked',
                 Authorization => $known ],
    body => chunked(batch(100, 'chunked'), 4096));
is($code, 413, 'chunked body over client_max_body_size: 413');
is(code_of($body), 'too_large', 'chunked 413: JSON too_large');

# 413 for a chunked body whose excess arrives in a later read

sub slow_chunked {
    my ($path, $data) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->port(8080),
                                  Proto => 'tcp', Timeout => 10)
        or return '';
    print $s "POST $path HTTP/1.1\r\nHost: localhost\r\n"
        . "Connection: close\r\nContent-Type: application/json\r\n"
        . "Authorization: $known\r\nTransfer-Encoding: chunked\r\n\r\n";
    my $chunks = chunked($data, 8192);
    while (length $chunks) {
        local $SIG{PIPE} = 'IGNORE';
        print $s substr($chunks, 0, 16384, '') or last;
        sleep 0.05;
    }
    local $/;
    my $in = '';
    while (1) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $in .= $buf;
    }
    close $s;
    return $in;
}

my ($scode, $sh, $sbody) = Test::Ldseg::parse_response(
    slow_chunked('/v1/batch', batch(200, 'slow')));
is($scode, 413, 'chunked body found too large while reading: 413');
is(code_of($sbody), 'too_large', 'chunked 413 while reading: JSON too_large');

# within the limit, chunked or not, nothing changes

($code, undef, $body) = $t->http_request(method => 'POST',
    path => '/v1/batch',
    headers => [ 'Content-Type' => 'application/json',
                 'Transfer-Encoding' => 'chunked',
                 Authorization => $known ],
    body => chunked(batch(40, 'small'), 4096));
is($code, 200, 'chunked body within the limit: 200') or diag($body);
($scode) = Test::Ldseg::parse_response(slow_chunked('/v1/batch',
                                                    batch(40, 'slow-ok')));
is($scode, 200, 'slow chunked body within the limit: 200');

# page, screen and group with an unknown write key: 401 like track

for my $ep (qw(page screen group)) {
    ($code, undef, $body) = $t->http_post("/v1/$ep",
        $J->encode({ userId => 'u', name => 'N', groupId => 'g' }),
        Authorization => $unknown);
    is("$code " . code_of($body), '401 unknown_write_key',
       "$ep with an unknown write key: 401");
}

($code, undef, $body) = $t->http_post('/v1/batch', $J->encode({ batch => [
    { type => 'page', userId => 'u', name => 'Home' },
    { type => 'screen', userId => 'u', name => 'Main' },
    { type => 'group', userId => 'u', groupId => 'g' } ] }),
    Authorization => $unknown);
is("$code " . code_of($body), '401 unknown_write_key',
   'batch of page/screen/group with an unknown write key: 401');

($code) = $t->http_post('/v1/page', $J->encode({ userId => 'u' }),
                        Authorization => $known);
is($code, 200, 'page with a known write key: 200');

($code, undef, $body) = $t->http_post('/v1/track',
    $J->encode({ userId => 'u', event => 'E', timestamp => $TS }),
    Authorization => $unknown);
is("$code " . code_of($body), '401 unknown_write_key',
   'track with an unknown write key: 401');

# $ldseg_write_key in the ldseg_pass location

($code, $h) = $t->http_post('/pass/v1/t',
    $J->encode({ writeKey => 'key-known', userId => 'u', event => 'P',
                 timestamp => $TS }), 'Content-Type' => 'text/plain');
is($code, 204, 'pass: the named location answers');
is($h->{'x-pass-key'}, '[key-known]',
   'pass: $ldseg_write_key from the body in the named location');

($code, $h) = $t->http_post('/pass/v1/track',
    $J->encode({ userId => 'u', event => 'P2', timestamp => $TS }),
    Authorization => $known);
is($h->{'x-pass-key'}, '[key-known]',
   'pass: $ldseg_write_key from basic auth in the named location');

# client_body_buffer_size: raised when not set, kept when set

my $twenty = batch(20, 'buf');

($code, $h, $body) = $t->http_post('/v1/batch', $twenty,
                                   Authorization => $known);
is($code, 200, 'unset buffer: 200') or diag($body);
is($h->{'x-body-file'}, '[]', 'unset buffer: a 20 KB body read in memory');

($code, $h) = $t->http_post('/default/v1/batch', $twenty,
                            Authorization => $known);
is($code, 200, 'explicit 8k: 200');
like($h->{'x-body-file'} // '', qr{^\[/.+\]$},
     'explicit 8k in the location: a 20 KB body goes to a file');

($code, $h) = $t->http_post('/after/v1/batch', $twenty,
                            Authorization => $known);
is($code, 200, 'explicit 12k after ldseg on: 200');
like($h->{'x-body-file'} // '', qr{^\[/.+\]$},
     'explicit 12k after ldseg on: a 20 KB body goes to a file');

($code, $h) = $t->http_post('/v1/batch', $twenty, Authorization => $known,
                            -port => $t->port(8082));
is($code, 200, 'explicit 8k in the server: 200');
like($h->{'x-body-file'} // '', qr{^\[/.+\]$},
     'explicit 8k in the server: a 20 KB body goes to a file');

# status: the refusals above, each under its reason

my $s = $t->status || {};
is($s->{rejected_reasons}{too_large}, 3, 'status: too_large 3');
is($s->{rejected_reasons}{unknown_write_key}, 7,
   'status: unknown_write_key, one per message');

$t->stop;

is($t->read_file('pass.log'),
   "/pass/v1/t [key-known]\n/pass/v1/track [key-known]\n",
   'pass: $ldseg_write_key in the named location\'s access log');

###############################################################################
