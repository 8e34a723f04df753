#!/usr/bin/perl

# Crash points (issue 6, requirement 5): the module of "make crashpoints"
# kills a worker with SIGKILL at a named point when the test has created the
# file "crash-NAME" in the nginx prefix (src/ngx_http_ldseg_crash.h).  The
# points are found by scanning the sources for ngx_http_ldseg_crash("NAME"),
# so a new point is covered without touching this file.
#
# One nginx (2 workers, spool with delay=200ms, flush 100ms, small payloads)
# runs under continuous load from the test while a mock LaunchDarkly
# answers a mix of 202 and 503, and 413 to a POST of more than 1400 bytes
# (the larger payloads of one client-side ID, which are split).  Each point
# in turn is armed and the load goes on until a worker died there (the file
# is gone) and the master has replaced it.  A point not
# reached within 1.5 s gets help, one situation after the other: a 413 on a
# payload in memory (split), an outage (spool writes, backoff), a full zone
# (eviction, payloads on disk only), a worker killed with POSTs in flight
# (lease takeover), a reload, a reload that grows the zone.  After 8.5 s
# the point counts as not reached.
#
# Then LaunchDarkly answers 202 and the delivery contract must hold: every
# event a client got a 2xx for delivered; a payload ID always carries the
# same body; an event never delivered under two payload IDs; nothing
# delivered that a client was refused; the queue drains to nothing (no
# leaked events, bytes, leases or spool records); the zone still serves.
#
# TEST_LDSEG_CRASHPOINTS=REGEX runs only the points whose names match.
#
# When an event is delivered under two payload IDs, the test tells for each
# such payload every POST that carried its events (time, payload ID,
# answer, the worker that sent it, as the mock found it) and what the run
# was doing then: the point armed, the situations tried, crashes, kills,
# reloads and resizes, with the workers before and after.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use Cwd qw(abs_path);
use JSON::PP;
use Time::HiRes qw(time sleep);

###############################################################################

my $ROOT = abs_path("$FindBin::Bin/..");
my $MODULE = "$ROOT/build/crashpoints/ngx_http_ldseg_module.so";

plan(skip_all => "$MODULE not built (run make crashpoints)")
    unless -f $MODULE;

# the points, in source order; comments do not count

sub crash_points {
    my (@points, %seen);

    for my $f (sort(glob("$ROOT/src/*.c")), "$ROOT/ngx_http_ldseg_module.c") {
        open my $fh, '<', $f or next;
        local $/;
        my $c = <$fh>;
        close $fh;
        $c =~ s{/\*.*?\*/}{}gs;
        while ($c =~ /\bngx_http_ldseg_crash\s*\(\s*"([A-Za-z0-9_]+)"\s*\)/g) {
            push @points, $1 unless $seen{$1}++;
        }
    }

    for (grep { $seen{$_} > 1 } @points) {
        diag("crash point $_ appears $seen{$_} times: any of them may fire");
    }

    return @points;
}

my @points = crash_points();

# points that all went away would make this test prove nothing

if (!@points) {
    plan(tests => 1);
    fail('ngx_http_ldseg_crash("NAME") points found in src/*.c');
    exit;
}

# TEST_LDSEG_CRASHPOINTS=REGEX runs the matching points only

if (defined $ENV{TEST_LDSEG_CRASHPOINTS}) {
    @points = grep { /$ENV{TEST_LDSEG_CRASHPOINTS}/ } @points;
    plan(skip_all => "no crash point matches $ENV{TEST_LDSEG_CRASHPOINTS}")
        unless @points;
}

my $t = Test::Ldseg->new(module => $MODULE)->plan(@points + 13);
my $mock = $t->mock;
my $dir = $t->testdir;

# every point may take its full time box: more than the harness's default

alarm(180 + 12 * @points);

my $spool = "$dir/spool";
mkdir $spool or die "$spool: $!\n";

# the deliberate kills (of the points, and of the takeover situation)

my @ALLOW = (qr/worker process \d+ exited on signal 9/,
             qr/shared memory zone "ldseg" was locked by \d+/);
$t->allow_log(@ALLOW);

my $CONF = <<'EOF';
%%TEST_GLOBALS%%

worker_processes 2;
worker_rlimit_core 0;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg %%ZONE%%;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 8;
    ldseg_retry_max_delay 1s;
    ldseg_timeout 5s;
    ldseg_spool %%TESTDIR%%/spool delay=200ms;

    # its crash point is passed by every request
    ldseg_dedupe zone=dd:1m;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id $arg_id;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

sub write_conf {
    my ($zone) = @_;
    (my $c = $CONF) =~ s/%%ZONE%%/$zone/;
    $t->write_file_expand('nginx.conf', $c);
}

my $zone = 256;
write_conf("${zone}k");

###############################################################################

# the mock's answers: 202 and 503 mixed; the steps last a few hundred
# POSTs and are renewed for every point.  A POST of more than 1400 bytes
# gets 413 whatever its step: LaunchDarkly's limit is a property of the
# body, so a payload sent again after a crash gets the same answer.  Only
# the payloads of 7 or 8 events of "B" (padded) and those of the split and
# full zone situations below are that large, never a single event.

my $MAX_BYTES = 1400;
my @MIX = (202, 202, 503, 202, 202, 202, 503, 202, 202, 202);

sub mix {
    $mock->script(default => { status => 202 }, max_bytes => $MAX_BYTES,
                  steps => [ map { { status => $MIX[$_ % @MIX] } }
                             0 .. 399 ]);
}

sub outage {
    $mock->script(default => { status => 503 });
}

# what the run did when, for the diagnostics of a broken contract

my $T0 = time;
my @timeline;

sub mark {
    my ($what) = @_;
    push @timeline, [ time, $what ];
}

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2021-04-05T06:07:08.009Z';
my (@acked, @maybe, @refused);
my $nbig = 0;

# a batch of $n events of about $pad bytes each, sent from the test itself;
# its events are accounted for like those of the load

sub send_batch {
    my ($id, $n, $pad) = @_;
    my $i = ++$nbig;
    my @keys = map { "big-$i-$_" } 1 .. $n;
    my ($code) = $t->http_post("/v1/batch?id=$id",
        $J->encode({ batch => [ map { {
            type => 'track', userId => "u-$_", event => $_, timestamp => $TS,
            properties => { pad => 'z' x $pad } } } @keys ] }),
        -timeout => 5);
    if ($code =~ /^2/) {
        push @acked, @keys;
    } elsif ($code == 0) {
        push @maybe, @keys;
    } else {
        push @refused, @keys;
    }
    return $code;
}

# the zone full: LaunchDarkly down long enough for payloads to be spooled,
# then big batches until the zone refuses one; payloads on disk give their
# memory back (eviction) and are sent from the spool later

sub fill {
    outage();
    sleep 0.3;
    my $end = time + 1;
    for (1 .. 12) {
        last if send_batch('F', 40, 1000) != 200 || time > $end;
    }
    mix();
}

# a 413 on a payload in memory: 16 events of about 320 bytes for a client-
# side ID of its own (another one each time: a destination that an earlier
# crash left stuck does not matter), sent as payloads of 8 that are split

my $nsplit = 0;

sub split_payloads {
    $nsplit++;
    send_batch("S$nsplit", 16, 200);
}

# a worker killed with POSTs in flight: LaunchDarkly answers slowly for a
# moment, then one worker is killed and the other takes its leases over

sub takeover {
    my $since = time;
    $mock->script(default => { status => 202 }, max_bytes => $MAX_BYTES,
                  steps => [ { delay => 1, times => 8 } ]);

    my $victim;
    Test::Ldseg::wait_for(sub {
        for my $p (reverse $mock->posts) {
            last if $p->{time} < $since;
            next unless $p->{delay} && $p->{time} + 0.8 > time;
            $victim = $t->worker_for_port($p->{peer});
            return 1 if $victim;
        }
        return 0;
    }, 1.2);

    if ($victim) {
        mark("takeover: worker $victim killed with POSTs in flight");
        kill 'KILL', $victim;
    }
    sleep 0.2;
    mix();
}

sub reload {
    mark('reload (workers before: ' . join(' ', $t->workers) . ')');
    kill 'HUP', $t->master_pid;
}

# a resize that grows the zone (a shrink may rightly be refused)

sub resize {
    $zone += 64;
    write_conf("${zone}k");
    mark("resize to ${zone}k (workers before: " . join(' ', $t->workers)
         . ')');
    kill 'HUP', $t->master_pid;
}

# seconds after arming: what to try when the point has not been reached

my @HELP = (
    [ 1.5, 'split',    \&split_payloads ],
    [ 2.3, 'outage',   \&outage ],
    [ 3.0, 'outage',   \&mix ],
    [ 3.2, 'fill',     \&fill ],
    [ 4.6, 'takeover', \&takeover ],
    [ 6.0, 'reload',   \&reload ],
    [ 7.0, 'resize',   \&resize ],
);
my $TIMEBOX = 8.5;

###############################################################################

mix();
$t->run;

my @loads = (
    $t->load(name => 'a', clients => 2, duration => 600, interval => 0.02,
             path => '/v1/track?id=A', timeout => 5),
    $t->load(name => 'b', clients => 1, duration => 600, interval => 0.03,
             per_request => 3, pad => 100, path => '/v1/batch?id=B',
             timeout => 5),
);

Test::Ldseg::wait_for(sub { $mock->events >= 20 }, 10);

my (@reached, @missed, @no_respawn, $broken);
my $t0 = time;

# a crash that leaves the zone damaged (an alert in error.log, the status
# not answering) stops the run: what follows would not mean much, and a
# worker spinning on a damaged zone can fill the disk with its alerts

sub damage {
    my ($log0) = @_;

    my ($code) = $t->http_get('/status', -timeout => 3);
    return "the status does not answer ($code)" unless $code == 200;

    my $log = log_since($log0);
    my @bad = grep { my $l = $_; !grep { $l =~ $_ } @ALLOW }
              grep { /\[(alert|crit|emerg)\]/ } split /\n/, $log;
    return @bad ? "error.log: " . join("\n", @bad[0 .. ($#bad < 4 ? $#bad : 4)])
                : undef;
}

for my $name (@points) {
    if ($broken) {
        ok(0, "point $name reached under load");
        next;
    }

    my $token = "$dir/crash-$name";
    my $log0 = -s "$dir/error.log";

    mix();

    open my $fh, '>', $token or die "$token: $!\n";
    close $fh;
    mark("point $name armed (workers: " . join(' ', $t->workers) . ')');

    my $start = time;
    my ($hit, $help, $step) = (0, 'load', 0);

    while (1) {
        if (!-e $token) {
            $hit = 1;
            last;
        }

        my $el = time - $start;
        last if $el >= $TIMEBOX;

        while ($step < @HELP && $el >= $HELP[$step][0]) {
            $help = $HELP[$step][1];
            mark("help: $help" . ($HELP[$step][2] == \&mix ? ' ends' : ''));
            $HELP[$step][2]->();
            $step++;
        }

        sleep 0.02;
    }

    # disarm; a worker that removed it first was killed there after all

    $hit = 1 if !$hit && !unlink $token;

    my $took = time - $start;
    ok($hit, "point $name reached under load");

    if (!$hit) {
        mark("point $name not reached");
        push @missed, $name;
        next;
    }

    push @reached, sprintf '%s (%s, %.1f s)', $name, $help, $took;

    # the victim (it logs the point just before it dies), then its
    # replacement

    my $from = (-s "$dir/error.log") - (1 << 20);
    $from = $log0 if $from < $log0;

    my $victim;
    my $re = qr/crash point "\Q$name\E" reached, killing process (\d+)/;
    Test::Ldseg::wait_for(sub {
        ($victim) = log_since($from) =~ $re;
        return defined $victim;
    }, 5);

    # without the victim's line (a worker that was exiting after a reload
    # of the situations, or a line beyond the window read), the master
    # must still run two workers again

    my $ok = Test::Ldseg::wait_for(sub {
        return 0 if defined $victim && Test::Ldseg::_alive($victim);
        return grep({ !defined $victim || $_ != $victim } $t->workers) >= 2;
    }, 10);

    diag("$name: the killed worker logged no line within reach")
        unless defined $victim;

    mark("point $name reached, worker " . ($victim // '?') . ' killed; '
         . 'workers now: ' . join(' ', $t->workers));

    push @no_respawn, $name . (defined $victim ? "($victim)" : '')
        unless $ok;

    my $damage = damage($log0);
    if ($damage) {
        $broken = $name;
        diag("found after the crash at $name (an earlier crash may have "
             . "caused it): $damage");
        diag("the run stops here: the points after $name were not tried");
    }
}

my $points_time = time - $t0;

note("reached: $_") for @reached;
diag("not reached in $TIMEBOX s, even with a split, an outage, a full zone, "
     . 'a lease takeover, a reload and a resize: ' . join(' ', @missed))
    if @missed;

is(join(' ', @no_respawn), '', 'a new worker after every crash');
is($broken // '', '', 'the zone serves, and logs no alert, after every crash');

mark('points done');

my @res = map { $_->stop(15) } @loads;

for my $r (@res) {
    push @acked, @{ $r->{acked} };
    push @maybe, @{ $r->{noanswer} };
    push @refused, @{ $r->{refused} }, @{ $r->{other} };
}

cmp_ok(scalar @acked, '>', 100, scalar(@acked) . ' events acked under load');

SKIP: {

if ($broken) {
    # stop the damage and keep error.log readable for the teardown check

    $t->kill_all('KILL');
    trim_log(2000);
    skip("the zone broke at $broken", 10);
}

###############################################################################

# LaunchDarkly back for good: everything drains

$mock->script(default => { status => 202 });

my $s;
Test::Ldseg::wait_for(sub {
    my ($code, undef, $body) = $t->http_get('/status', -timeout => 3);
    $s = $code == 200 ? Test::Ldseg::json($body) : undef;
    return $s && $s->{queue}{events} == 0 && $s->{posts}{in_flight} == 0;
}, 40);

my $q = $s ? $s->{queue} : {};
is($q->{events}, 0, 'status: queue.events 0 after the drain');
is($q->{bytes}, 0, 'status: queue.bytes 0 (no chunk leaked)');
is($s && $s->{posts}{in_flight}, 0, 'status: posts.in_flight 0 (no lease '
   . 'leaked)');

Test::Ldseg::wait_for(sub {
    $s = $t->status;
    return $s && $s->{spool}{events} == 0;
}, 10);
is($s && $s->{spool}{events}, 0, 'status: spool.events 0 after the drain');

note('status: ' . join(' ', map { "$_=" . ($s->{$_} // '?') }
                            qw(delivered failed dropped spooled
                               lease_expired)));

# the zone keeps serving

my ($code) = $t->http_post('/v1/track?id=A', $J->encode({
    type => 'track', userId => 'u-final', event => 'final-1',
    timestamp => $TS }));
is($code, 200, 'a POST after all the crashes is accepted');
push @acked, 'final-1' if $code == 200;

my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => \@acked,
    maybe => \@maybe, sent => scalar(@acked) + scalar(@maybe)
    + scalar(@refused), match => qr/^(?:a|b|big|final)-/, timeout => 20);

ok(grep({ $_ eq 'final-1' } map { $_->{key} // '' } $mock->events),
   'and delivered');

diag(Test::Ldseg::figures(sprintf('%d crash points in %.0f s', scalar @reached,
                                  $points_time), $r)
     . sprintf(' refused=%d', scalar @refused));

is(scalar @{ $r->{missing} }, 0, 'every acked event delivered')
    or diag(scalar(@{ $r->{missing} }) . ' missing, e.g. '
            . join(' ', grep { defined } @{ $r->{missing} }[0 .. 9]));
is(join(' ', @{ $r->{dup_other_id} }), '',
   'no event delivered under two payload IDs')
    or diag(explain_dups($r->{dup_other_id}));

# a payload ID means one body: LaunchDarkly drops a payload whose ID it has
# seen, so a second body under the same ID would be lost

my (%body, %bad);
for my $p ($mock->posts) {
    my $id = $p->{headers}{'x-launchdarkly-payload-id'} // '';
    if (exists $body{$id} && $body{$id} ne $p->{body}) {
        $bad{$id} = 1;
    }
    $body{$id} //= $p->{body};
}
is(join(' ', sort keys %bad), '', 'a payload ID always carries the same body');

is(join(' ', @{ $r->{unacked} }), '',
   'nothing delivered that a client was refused');

}

###############################################################################

# Events delivered under two payload IDs: grouped by the payload IDs that
# carried them, every POST of those IDs (any answer) with the time since
# the start, the answer, the worker that sent it and the events; then what
# the run did from 3 s before the first of those POSTs to the last one

sub explain_dups {
    my ($keys) = @_;

    my %dup = map { $_ => 1 } @$keys;
    my (%ids, %posts_of);

    for my $p ($mock->posts) {
        my $id = $p->{headers}{'x-launchdarkly-payload-id'} // '-';
        for my $e (@{ $p->{events} || [] }) {
            my $k = ref $e eq 'HASH' ? $e->{key} // next : next;
            next unless $dup{$k};
            $ids{$k}{$id} = 1 if $p->{status} =~ /^2/;
            $posts_of{$k}{ $p->{seq} } = $p;
        }
    }

    my %groups;
    for my $k (@$keys) {
        push @{ $groups{ join(' ', sort keys %{ $ids{$k} }) } }, $k;
    }

    my $out = scalar(@$keys) . ' events delivered under more than one '
              . "payload ID:\n";
    my $n = 0;

    for my $g (sort { $groups{$a}[0] cmp $groups{$b}[0] } keys %groups) {
        if (++$n > 5) {
            $out .= '... and ' . (keys(%groups) - 5) . " more groups\n";
            last;
        }

        my @k = @{ $groups{$g} };
        $out .= sprintf "events %s .. %s (%d), 2xx under IDs %s; every "
                        . "POST that carried them:\n", $k[0], $k[-1],
                        scalar @k, $g;

        my %seen;
        my @ps = sort { $a->{time} <=> $b->{time} }
                 grep { !$seen{ $_->{seq} }++ }
                 map { values %{ $posts_of{$_} } } @k;

        for my $p (@ps) {
            my @ev = map { $_->{key} // '?' } @{ $p->{events} || [] };
            $out .= sprintf "  +%.3f s %s %s by pid %s (port %s): %d events "
                            . "%s .. %s\n", $p->{time} - $T0, $p->{status},
                            $p->{headers}{'x-launchdarkly-payload-id'} // '-',
                            $p->{pid} // '?', $p->{peer} // '?', scalar @ev,
                            $ev[0] // '', $ev[-1] // '';
        }

        my ($from, $to) = ($ps[0]{time} - 3, $ps[-1]{time});
        my @armed = grep { $_->[1] =~ /^point \S+ armed/ && $_->[0] <= $from }
                    @timeline;
        $out .= "  the run then:\n";
        $out .= sprintf "  +%.3f s %s\n", $armed[-1][0] - $T0, $armed[-1][1]
            if @armed;
        $out .= sprintf "  +%.3f s %s\n", $_->[0] - $T0, $_->[1]
            for grep { $_->[0] > $from && $_->[0] <= $to + 0.5 } @timeline;
    }

    my @log = grep { /ldseg_zone|crash point|exited on signal|reconfiguring/ }
              split /\n/, log_since(0);
    $out .= "error.log (resizes, crashes, reloads):\n"
            . join("\n", @log[0 .. ($#log < 59 ? $#log : 59)]) . "\n"
        if @log;

    return $out;
}

# error.log from byte $off on (it logs at debug level: read no more)

sub log_since {
    my ($off) = @_;

    open my $fh, '<', "$dir/error.log" or return '';
    seek $fh, $off, 0;
    local $/;
    my $log = <$fh>;
    close $fh;

    return $log // '';
}

# a worker spinning on a damaged zone logs alerts by the million: keep the
# first $n lines of error.log and the last 100

sub trim_log {
    my ($n) = @_;

    my $file = "$dir/error.log";
    return if -s $file < 1 << 20;

    open my $in, '<', $file or return;
    my (@head, @tail, $cut);
    while (my $l = <$in>) {
        if (@head < $n) {
            push @head, $l;
            next;
        }
        push @tail, $l;
        if (@tail > 100) {
            shift @tail;
            $cut++;
        }
    }
    close $in;

    open my $out, '>', $file or return;
    print $out @head, "[490-crashpoints.t: $cut lines cut here]\n", @tail;
    close $out;
}

###############################################################################
