#!/usr/bin/perl

# Identities that are not strings (arrays, objects, numbers) are turned into
# strings the JavaScript way; one that becomes longer than 1 KB is rejected
# with the code "invalid_identity" (400 for a single message, a "rejected"
# entry in a batch).  Without that limit an array of 7000 {} (21 KB of JSON)
# becomes 112 KB of "[object Object],..." per event: a small request would
# fill the queue.  Strings of 1000 bytes are still accepted.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(14);
my $mock = $t->mock(default => { status => 503 });

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 8m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_retry_max_delay 1s;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        client_max_body_size 1m;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id IDENT;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2024-01-15T10:20:30.123Z';
my $BIG = [ map { {} } 1 .. 7000 ];     # String(): 7000 x "[object Object]"

sub post {
    my ($path, $body) = @_;
    my ($code, undef, $b) = $t->http_post($path, $J->encode($body));
    return ($code, Test::Ldseg::json($b), $b);
}

sub err {
    my ($path, $body, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my ($code, $j, $raw) = post($path, $body);
    ok($code == 400 && ref $j eq 'HASH'
       && JSON::PP::is_bool($j->{success}) && !$j->{success}
       && ($j->{code} // '') eq 'invalid_identity'
       && length($j->{message} // ''), $name) or diag("$code $raw");
}

sub reason {
    my $s = $t->status;
    return $s && $s->{rejected_reasons}{invalid_identity};
}

sub queue_bytes {
    my $s = $t->status;
    return $s ? $s->{queue}{bytes} : -1;
}

###############################################################################

# a batch of 15 such messages (and one good one at the end)

my @batch = map { { type => 'track', userId => "u-$_", anonymousId => $BIG,
                    event => "I-$_", timestamp => $TS } } 1 .. 15;
push @batch, { type => 'track', userId => 'u-ok', event => 'I-ok',
               timestamp => $TS };

my $text = $J->encode({ batch => \@batch });
note('batch of ' . length($text) . ' bytes');

my ($code, $j, $raw) = post('/v1/batch', { batch => \@batch });
ok($code == 200 && $j && $j->{success}, 'batch: 200, success')
    or diag("$code " . substr($raw, 0, 300));
my @rej = @{ ($j && ref $j->{rejected} eq 'ARRAY') ? $j->{rejected} : [] };
is(join(' ', map { $_->{index} // '?' } @rej), join(' ', 0 .. 14),
   'batch: the 15 messages rejected');
is(scalar(grep { ($_->{code} // '') eq 'invalid_identity'
                 && length($_->{message} // '') } @rej), 15,
   'batch: each with code invalid_identity and a message');
is(reason(), 15, 'status: rejected_reasons.invalid_identity 15');
cmp_ok(queue_bytes(), '<', 64 * 1024, 'status: queue.bytes stays small');

# single messages: an array of objects, an array of 17-digit numbers

err('/v1/track', { userId => 'u', anonymousId => $BIG, event => 'I-t',
                   timestamp => $TS }, 'track: anonymousId array of 7000 {}');
err('/v1/track', { userId => 'u', event => 'I-n', timestamp => $TS,
                   anonymousId => [ map { 1234567890.12345 } 1 .. 100 ] },
    'track: anonymousId array of 100 numbers (1699 bytes as a string)');
is(reason(), 17, 'status: rejected_reasons.invalid_identity 17');

# what stays accepted (userId itself is never stringified: an array of
# more than one element is missing_identity, as before)

my $long = 'L' x 1000;
my $arr = [ map { 'x' x 99 } 1 .. 4 ];
($code) = post('/v1/track', { userId => $long, event => 'I-long',
                              timestamp => $TS });
is($code, 200, 'userId string of 1000 bytes accepted');
($code) = post('/v1/track', { userId => 'u-a', anonymousId => 'A' x 1000,
                              event => 'I-anon', timestamp => $TS });
is($code, 200, 'anonymousId string of 1000 bytes accepted');
($code) = post('/v1/track', { userId => 'u-r', anonymousId => $arr,
                              event => 'I-arr', timestamp => $TS });
is($code, 200, 'anonymousId array stringified to 399 bytes accepted');

cmp_ok(queue_bytes(), '<', 64 * 1024, 'status: queue.bytes still small');

# LaunchDarkly takes events again: exactly the accepted ones arrive

$mock->script(default => { status => 202 });
my @want = qw(I-ok I-long I-anon I-arr);
my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => \@want,
                                    match => qr/^I-/, timeout => 15);
is(join(',', @{ $r->{missing} }) . '|' . join(',', @{ $r->{unacked} }), '|',
   'the accepted events delivered, nothing else');
my %ev = map { $_->{key} => $_ } $mock->events;
is(($ev{'I-long'} && $ev{'I-long'}{contextKeys}{user} // '') . ' '
   . ($ev{'I-arr'} && $ev{'I-arr'}{contextKeys}{unauthenticatedUser} // ''),
   "$long " . join(',', @$arr), 'the long and stringified ids arrive intact');

###############################################################################
