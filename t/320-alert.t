#!/usr/bin/perl

# ldseg_alert: one [warn] line when the share of events delivered in the
# window drops below delivery_rate (naming the client-side IDs), one
# [notice] when it recovers, never more than one line per change (two
# workers); the same for the oldest queued event's age (max_age); the
# state is a gauge in the status, JSON and Prometheus.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

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
    ldseg_retry_max_delay 1s;
    ldseg_alert delivery_rate=0.9 window=2s max_age=2s;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /ok/ {
            ldseg on;
            ldseg_client_side_id OK-ID;
        }

        location /down/ {
            ldseg on;
            ldseg_client_side_id DOWN-ID;
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
my $TS = '2024-02-29T12:00:00Z';

sub track {
    my ($where, $event) = @_;
    return ($t->http_post("/$where/v1/track",
        $J->encode({ userId => 'u', event => $event, timestamp => $TS })))[0];
}

sub lines {
    my ($re) = @_;
    return grep { /$re/ } split /\n/, $t->read_file('error.log');
}

my $WARN = qr/\[warn\].*delivery rate to LaunchDarkly is/;
my $NOTICE = qr/\[notice\].*delivery rate to LaunchDarkly recovered/;
my $AGE_WARN = qr/\[warn\].*oldest queued event waits/;
my $AGE_NOTICE = qr/\[notice\].*no queued event waits longer/;

# healthy: no alert

track('ok', "A-$_") for 1 .. 3;
is($mock->wait_events(3, 10), 3, 'healthy: delivered');
ok(Test::Ldseg::wait_for(sub {
       my $a = ($t->status || {})->{alert} || {};
       defined $a->{delivery_rate} }, 10), 'healthy: the rate is known');
my $s = $t->status;
ok(!$s->{alert}{low} && $s->{alert}{delivery_rate} == 1,
   'healthy: rate 1, not low');

# DOWN-ID fails: its events keep failing, OK-ID is fine

$mock->script(default => { status => 202 }, steps => [
    { status => 503, path => 'DOWN-ID', times => 1000000 },
]);
track('down', "D-$_") for 1 .. 3;

ok(Test::Ldseg::wait_for(sub { lines($WARN) && lines($AGE_WARN) }, 15),
   'failing: warn lines logged');
$s = $t->status;
ok($s->{alert}{low} && $s->{alert}{delivery_rate} < 0.9,
   'failing: status alert.low, rate below 0.9');
ok($s->{alert}{old}, 'failing: status alert.old');

my ($pcode, undef, $prom) = $t->http_get('/status?format=prometheus');
like($prom, qr/^ldseg_alert\{kind="delivery_rate"\} 1$/m,
     'prometheus: ldseg_alert delivery_rate 1');

my @warn = lines($WARN);
like($warn[0], qr/client-side IDs: "DOWN-ID"$/, 'warn names DOWN-ID only');
like((lines($AGE_WARN))[0] // '', qr/"DOWN-ID"/,
     'age warn names DOWN-ID');

# still failing for a while: no second line

track('down', "D-more-$_") for 1 .. 3;
select undef, undef, undef, 3;
is(scalar(lines($WARN)), 1, 'failing on: one warn line only');

# LaunchDarkly takes DOWN-ID again

$mock->script(default => { status => 202 });
ok(Test::Ldseg::wait_for(sub { lines($NOTICE) && lines($AGE_NOTICE) }, 20),
   'recovered: notice lines logged');
$s = $t->status;
ok(!$s->{alert}{low} && !$s->{alert}{old}, 'recovered: status alert clear');

# traffic goes on: nothing more is logged

track('ok', "B-$_") for 1 .. 3;
track('down', "E-$_") for 1 .. 3;
select undef, undef, undef, 3;
is(scalar(lines($WARN)), 1, 'one warn in all');
is(scalar(lines($NOTICE)), 1, 'one notice in all');
is(scalar(lines($AGE_WARN)) . '/' . scalar(lines($AGE_NOTICE)), '1/1',
   'one age warn and one age notice');
($pcode, undef, $prom) = $t->http_get('/status?format=prometheus');
like($prom, qr/^ldseg_alert\{kind="delivery_rate"\} 0$/m,
     'prometheus: ldseg_alert delivery_rate 0');

###############################################################################
