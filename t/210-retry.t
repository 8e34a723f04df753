#!/usr/bin/perl

# Retries: a POST LaunchDarkly does not accept (5xx, 429, a reset
# connection, 413) leaves its events queued; they are sent again with the
# same X-LaunchDarkly-Payload-ID and exactly the same events, and nothing is
# lost or delivered twice.  429 with Retry-After pauses POSTs for that
# client-side ID (only) until it has passed.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;
use Time::HiRes qw(time);

###############################################################################

my $t = Test::Ldseg->new()->plan(23);
my $mock = $t->mock;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 10;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id $arg_id;
        }
    }
}
EOF

$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2018-01-02T03:04:05.006Z';

sub send_batch {
    my ($id, @keys) = @_;
    my ($code) = $t->http_post("/v1/batch?id=$id", $J->encode({ batch => [
        map { { type => 'track', userId => "u-$_", event => $_,
                timestamp => $TS } } @keys ] }));
    return $code;
}

sub posts_for {
    my ($id) = @_;
    return grep { $_->{client_id} eq $id } $mock->posts;
}

sub canon_events {
    my ($p) = @_;
    return Test::Ldseg::canon_text(Test::Ldseg::canon_json($p->{body}));
}

sub delivered_once {
    my ($id, @keys) = @_;
    my %n;
    $n{ $_->{key} }++ for $mock->events(client_id => $id);
    return join(',', map { "$_=" . ($n{$_} // 0) } @keys)
        eq join(',', map { "$_=1" } @keys)
        && keys %n == @keys;
}

###############################################################################

# 503, then 202

$mock->script(steps => [ { status => 503, path => 'ID-503' } ]);

is(send_batch('ID-503', map { "R503-$_" } 1 .. 3), 200, 'events accepted');
Test::Ldseg::wait_for(sub { posts_for('ID-503') >= 2 }, 15);
my @p = posts_for('ID-503');
cmp_ok(scalar @p, '>=', 2, 'POST retried after 503');
is($p[0]{status}, 503, 'first POST got 503');
is($p[1]{status}, 202, 'retry got 202');
is($p[1]{headers}{'x-launchdarkly-payload-id'},
   $p[0]{headers}{'x-launchdarkly-payload-id'}, 'retry: same payload ID');
is(canon_events($p[1]), canon_events($p[0]), 'retry: same events');
ok(delivered_once('ID-503', map { "R503-$_" } 1 .. 3),
   '503: every event delivered once');

# a connection reset without an answer, then 202

$mock->script(steps => [ { reset => 1, path => 'ID-RESET' } ]);

is(send_batch('ID-RESET', 'RESET-1', 'RESET-2'), 200, 'events accepted');
Test::Ldseg::wait_for(sub { posts_for('ID-RESET') >= 2 }, 15);
@p = posts_for('ID-RESET');
is(join(' ', map { $_->{status} } @p[0, 1]), 'reset 202',
   'POST retried after a reset');
is($p[1]{headers}{'x-launchdarkly-payload-id'},
   $p[0]{headers}{'x-launchdarkly-payload-id'}, 'reset: same payload ID');
is(canon_events($p[1]), canon_events($p[0]), 'reset: same events');

# several failures in a row (500, 502, 503, 408, 400): still delivered once

$mock->script(steps => [ map { { status => $_, path => 'ID-MANY' } }
                         500, 502, 503, 408, 400 ]);

is(send_batch('ID-MANY', 'MANY-1'), 200, 'event accepted');
Test::Ldseg::wait_for(sub { grep { $_->{status} eq '202' }
                            posts_for('ID-MANY') }, 40);
@p = posts_for('ID-MANY');
is(join(' ', map { $_->{status} } @p), '500 502 503 408 400 202',
   'retried through 5 failures');
is(scalar(keys %{{ map { $_->{headers}{'x-launchdarkly-payload-id'} => 1 }
                   @p }}), 1, 'one payload ID throughout');
ok(delivered_once('ID-MANY', 'MANY-1'), 'delivered once after failures');

# 429 with Retry-After: 4 s of silence for that ID, other IDs go on

$mock->script(steps => [ { status => 429, retry_after => 4,
                           path => 'ID-429' } ]);

is(send_batch('ID-429', 'R429-1'), 200, 'event accepted');
Test::Ldseg::wait_for(sub { posts_for('ID-429') >= 1 }, 10);
my $t429 = (posts_for('ID-429'))[0]{time};

send_batch('ID-429', 'R429-2');
send_batch('ID-OTHER', 'OTHER-1');
Test::Ldseg::wait_for(sub { posts_for('ID-OTHER') >= 1 }, 3.5);

my ($other) = posts_for('ID-OTHER');
my @p429 = posts_for('ID-429');
shift @p429;
ok($other && $other->{time} < $t429 + 4
   && !grep({ $_->{time} < $other->{time} } @p429),
   'another client-side ID is not paused');

Test::Ldseg::wait_for(sub { delivered_once('ID-429', 'R429-1', 'R429-2') },
                      20);
@p = posts_for('ID-429');
my @early = grep { $_->{time} < $t429 + 3.9 } @p[1 .. $#p];
is(scalar @early, 0, 'no POST for the ID before Retry-After passed')
    or diag(join ' ', map { sprintf '%.2f', $_->{time} - $t429 } @early);
ok(delivered_once('ID-429', 'R429-1', 'R429-2'), '429: delivered once');

# 413: the payload is split, nothing lost, nothing twice

$mock->script(steps => [ { status => 413, path => 'ID-413' } ]);

my @k413 = map { "R413-$_" } 1 .. 10;
is(send_batch('ID-413', @k413), 200, '10 events accepted');
Test::Ldseg::wait_for(sub { delivered_once('ID-413', @k413) }, 20);
@p = posts_for('ID-413');
ok(delivered_once('ID-413', @k413), '413: every event delivered once');
is($p[0]{status}, 413, '413 answered');
ok(@p > 2 && !grep({ @{ $_->{events} || [] } >= @{ $p[0]{events} || [] } }
                   @p[1 .. $#p]),
   '413: sent again in smaller payloads')
    or diag(join ' ', map { "$_->{status}:" . @{ $_->{events} || [] } } @p);

###############################################################################
