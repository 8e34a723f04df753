#!/usr/bin/perl

# Reload and shutdown with 2 workers: "nginx -s reload" keeps queued events
# (the zone is reused, counters included) and the new workers deliver them;
# a reload with a POST in flight loses nothing; "nginx -s quit" finishes in
# bounded time while LaunchDarkly hangs.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;
use Time::HiRes qw(time);

###############################################################################

my $t = Test::Ldseg->new()->plan(16);
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
    ldseg_batch_size 5;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id RELOAD;
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
my $TS = '2017-06-05T04:03:02.001Z';

sub send_events {
    my (@keys) = @_;
    my $ok = 1;
    for my $k (@keys) {
        my ($code) = $t->http_post('/v1/track', $J->encode({
            userId => "u-$k", event => $k, timestamp => $TS }));
        $ok = 0 if $code != 200;
    }
    return $ok;
}

# each key delivered at least once; a repeat only as a retry of the same
# payload (same payload ID, same events)

sub check_delivery {
    my (@keys) = @_;
    my %n;
    my %by_id;
    for my $p (grep { $_->{status} =~ /^2/ } $mock->posts) {
        $n{ $_->{key} }++ for @{ $p->{events} || [] };
    }
    for my $p ($mock->posts) {
        push @{ $by_id{ $p->{headers}{'x-launchdarkly-payload-id'} // '' } },
            Test::Ldseg::canon_text(Test::Ldseg::canon_json($p->{body}));
    }
    my @missing = grep { !$n{$_} } @keys;
    my @changed = grep { my @b = @{ $by_id{$_} };
                         grep { $_ ne $b[0] } @b } keys %by_id;
    return (\@missing, \@changed, \%n);
}

# LaunchDarkly down: 20 events stay queued

$mock->script(default => { status => 503 });

my @keys = map { "RL-$_" } 1 .. 20;
ok(send_events(@keys), '20 events accepted');
Test::Ldseg::wait_for(sub { grep { $_->{status} eq '503' } $mock->posts }, 10);

my $before = $t->status;
is($before && $before->{queue}{events}, 20, '20 events queued');

my @old = $t->workers;
ok($t->reload, 'reload');
my @new = $t->workers;
is(scalar(grep { my $o = $_; grep { $_ == $o } @new } @old), 0,
   'all workers replaced');

my $after = $t->status;
is($after && $after->{queue}{events}, 20, 'queue kept across reload');
is($after && $after->{received}, $before && $before->{received},
   'counters kept across reload');

# LaunchDarkly back: the new workers deliver everything

$mock->script();
Test::Ldseg::wait_for(sub { !@{ (check_delivery(@keys))[0] } }, 20);
my ($missing, $changed, $n) = check_delivery(@keys);
is(join(',', @$missing), '', 'every queued event delivered after reload');
is(join(',', @$changed), '', 'retries kept payload ID and events');
is(scalar(grep { $n->{$_} > 1 } @keys), 0, 'nothing delivered twice');

# reload while a POST hangs in flight

$mock->script(steps => [ { delay => 3 } ]);
my @keys2 = map { "RF-$_" } 1 .. 5;
ok(send_events(@keys2), '5 more events accepted');
Test::Ldseg::wait_for(sub { grep { ($_->{delay} // 0) == 3 } $mock->posts },
                      10);
ok($t->reload, 'reload with a POST in flight');
Test::Ldseg::wait_for(sub { !@{ (check_delivery(@keys2))[0] } }, 30);
($missing, $changed) = check_delivery(@keys2);
is(join(',', @$missing), '', 'events of the in-flight POST delivered');
is(join(',', @$changed), '', 'in-flight retry kept payload ID and events');

my $s = $t->status;
Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{queue}{events} == 0 }, 10);
is($s && $s->{queue}{events}, 0, 'queue empty');

# quit while LaunchDarkly hangs: bounded (the harness allows 15 s)

$mock->script(default => { delay => 120 });
send_events('RQ-1');
Test::Ldseg::wait_for(sub { grep { ($_->{delay} // 0) == 120 }
                            $mock->posts }, 10);
ok(scalar(grep { ($_->{delay} // 0) == 120 } $mock->posts),
   'a POST hangs in flight');

my $t0 = time;
$t->stop;
ok(!@{ $t->{_stop_errors} || [] }, 'quit with a hanging POST')
    or diag(join "\n", @{ $t->{_stop_errors} });

###############################################################################
