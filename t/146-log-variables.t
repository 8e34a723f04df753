#!/usr/bin/perl

# Variables for access logs: $ldseg_events (events the request queued),
# $ldseg_result ("accepted", "partial", "rejected:<code>", "backpressure")
# and $ldseg_client_side_id, in the log_format the README shows; also in
# the access log of an ldseg_pass named location.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(11);
my $mock = $t->mock;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_max_destinations 3;

    log_format ldseg '$remote_addr [$time_local] "$request" $status '
                     'events=$ldseg_events result=$ldseg_result '
                     'id=$ldseg_client_side_id';

    map $ldseg_write_key $ld_id {
        default      "";
        key-a        ID-A;
        key-b        ID-B;
        key-c        ID-C;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        access_log %%TESTDIR%%/ldseg.log ldseg;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id $ld_id;
        }

        location /pass/v1/ {
            ldseg on;
            ldseg_client_side_id ID-P;
            ldseg_pass @up;
        }

        location @up {
            access_log %%TESTDIR%%/pass.log ldseg;
            return 202;
        }
    }
}
EOF

$mock->script(default => { status => 503 });

$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2024-02-29T12:00:00Z';

sub post {
    my ($path, $key, $body) = @_;
    return ($t->http_post($path, $body,
                          Authorization => Test::Ldseg::basic_auth($key)))[0];
}

my $track = $J->encode({ userId => 'u', event => 'E', timestamp => $TS });

post('/v1/track', 'key-a', $track);
post('/v1/batch', 'key-a', $J->encode({ batch => [
    { type => 'track', userId => 'u', event => 'E1', timestamp => $TS },
    { type => 'track', userId => 'u', event => 'E2', timestamp => $TS },
    { type => 'track', userId => 'u' },
] }));
post('/v1/track', 'key-a', 'not json');
post('/v1/track', 'key-unknown', $track);
post('/v1/track', 'key-b', $track);
post('/v1/batch', 'key-b', $J->encode({ batch => [
    map { { type => 'track', userId => "u$_", event => 'E', timestamp => $TS } }
        1 .. 123
] }));
post('/pass/v1/track', 'key-a', $track);
my $code = post('/v1/track', 'key-c', $track);
is($code, 503, 'fourth destination: 503');

my @lines = split /\n/, $t->read_file('ldseg.log');
my @pass = split /\n/, $t->read_file('pass.log');

sub fields {
    my ($l) = @_;
    return ($l // '') =~ /" (\d+) events=(\S+) result=(\S+) id=(\S+)$/
        ? "$1 $2 $3 $4" : "unparsed: " . ($l // 'none');
}

is(fields($lines[0]), '200 1 accepted ID-A', 'track: accepted, 1 event');
is(fields($lines[1]), '200 2 partial ID-A', 'batch: partial, 2 events');
is(fields($lines[2]), '400 0 rejected:invalid_json -',
   'invalid JSON: rejected:invalid_json');
is(fields($lines[3]), '401 0 rejected:unknown_write_key -',
   'unknown write key: rejected:unknown_write_key');
is(fields($lines[4]), '200 1 accepted ID-B', 'second ID: accepted');
is(fields($lines[5]), '200 123 accepted ID-B',
   'a batch of 123: events=123');
is(fields($lines[6]), '503 0 backpressure ID-C',
   'a destination too many: backpressure');
is(scalar @lines, 7, 'one line per request in the server log');
is(fields($pass[0]), '202 1 accepted ID-P',
   'ldseg_pass: the named location logs the variables');
is(scalar @pass, 1, 'one line in the named location log');

###############################################################################
