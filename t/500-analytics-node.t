#!/usr/bin/perl

# End to end with Segment's real server library, @segment/analytics-node
# (pinned in t/clients/package.json, run by t/clients/analytics-node.js):
#
# - tracks, identifies and aliases sent by the library through ldseg reach
#   LaunchDarkly (the mock) exactly as the translation says, once each, for
#   the client-side ID that the library's write key selects through a map on
#   $ldseg_write_key, and the library reports no error;
# - backpressure: with LaunchDarkly down and the smallest zone, ldseg answers
#   the library 503 + Retry-After; the library keeps its batches and retries
#   (analytics-node retries 5xx with its own backoff, up to maxRetries), and
#   once LaunchDarkly is back every event the library sent is delivered, none
#   lost, a duplicate only with the payload ID of its first copy.
#
# Needs node (Debian's nodejs; .ci/deps.sh installs it, with npm); skipped
# without it.  t/clients/node_modules is installed with "npm ci" when it is
# missing or holds another version of the library.  TEST_LDSEG_NODE and
# TEST_LDSEG_NPM name other node / npm binaries.
#
# analytics.js (@segment/analytics-next) needs a DOM ("window is not defined"
# under node): t/510-browser.t runs it in headless Chromium.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use File::Spec;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use Time::Local ();

###############################################################################
# node, npm and the library

my $CLIENTS = "$FindBin::Bin/clients";
my $SCRIPT = "$CLIENTS/analytics-node.js";

sub which {
    my ($name) = @_;
    return -x $name ? $name : undef if $name =~ m{/};
    for my $d (File::Spec->path) {
        return "$d/$name" if -f "$d/$name" && -x _;
    }
    return undef;
}

my $NODE = which($ENV{TEST_LDSEG_NODE} || 'node')
    or plan(skip_all => 'node is not installed (.ci/deps.sh installs'
                        . ' Debian\'s nodejs and npm)');

my $node_version = `"$NODE" --version 2>/dev/null` // '';
chomp $node_version;
$node_version ||= '?';

# the library as pinned in package.json, and as installed

sub json_file {
    my ($file) = @_;
    open my $fh, '<', $file or return undef;
    local $/;
    my $v = eval { JSON::PP->new->decode(<$fh>) };
    close $fh;
    return $v;
}

my $PKG = '@segment/analytics-node';
my $pinned = json_file("$CLIENTS/package.json")->{dependencies}{$PKG};

sub installed_version {
    my $p = json_file("$CLIENTS/node_modules/$PKG/package.json");
    return $p ? $p->{version} : undef;
}

# runs a command in t/clients with stdout+stderr to $log; kills it after
# $timeout s.  Returns the exit status (-1: timed out).

sub run_bounded {
    my ($timeout, $log, @cmd) = @_;

    my $pid = fork();
    die "fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        chdir $CLIENTS or POSIX::_exit(126);
        open STDOUT, '>', $log or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT;
        POSIX::setpgid(0, 0);
        exec(@cmd) or POSIX::_exit(127);
    }

    my $deadline = time + $timeout;
    while (time < $deadline) {
        return $? >> 8 if waitpid($pid, WNOHANG) == $pid;
        sleep 0.1;
    }
    kill 'KILL', -$pid, $pid;
    waitpid($pid, 0);
    return -1;
}

if (!defined installed_version() || installed_version() ne $pinned) {
    my $log = File::Spec->catfile(File::Spec->tmpdir, "ldseg-npm-ci-$$.log");
    my $npm = which($ENV{TEST_LDSEG_NPM} || 'npm');
    my $rc = $npm
        ? run_bounded(300, $log, $npm, 'ci', '--no-audit', '--no-fund',
                      '--loglevel=error')
        : 127;
    my $out = '';
    if (open my $fh, '<', $log) { local $/; $out = <$fh> // ''; close $fh }
    unlink $log;

    if ((installed_version() // '') ne $pinned) {
        plan(tests => 1);
        fail("npm ci in t/clients installs $PKG $pinned");
        diag($npm ? "npm ci: " . ($rc < 0 ? 'timed out after 300 s'
                                          : "exit $rc") . "\n$out"
                  : 'npm is not installed (.ci/deps.sh installs it)');
        exit 0;
    }
    note("npm ci in t/clients: $PKG $pinned installed");
}

###############################################################################

my $t = Test::Ldseg->new()->plan(29);
my $mock = $t->mock;

my $CONF = <<'EOF';
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg ZONE;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 50;
    ldseg_retry_max_delay 1s;
    ldseg_retry_after 1s;

    # events are compared with the timestamps the library set: Segment's
    # clock-skew correction (from the batch's sentAt, a few ms later) off
    ldseg_clock_skew off;

    # the write key the library sends picks the LaunchDarkly environment;
    # an unknown one is answered 401
    map $ldseg_write_key $ld_id {
        default           "";
        wk-node-basic     NODE-BASIC;
        wk-node-pressure  NODE-PRESSURE;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id $ld_id;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

sub start_nginx {
    my ($zone) = @_;
    (my $c = $CONF) =~ s/\bZONE\b/$zone/;
    $t->write_file_expand('nginx.conf', $c);
    $t->run;
}

# the node script: start in the background, wait for its JSON

my $runs = 0;

sub node_start {
    my (%cfg) = @_;

    my $n = ++$runs;
    my $dir = $t->testdir;
    my $h = { out => "$dir/node-$n.out", err => "$dir/node-$n.err",
              t0 => time };

    $h->{pid} = fork();
    die "fork: $!\n" unless defined $h->{pid};
    if ($h->{pid} == 0) {
        open STDOUT, '>', $h->{out} or POSIX::_exit(126);
        open STDERR, '>', $h->{err} or POSIX::_exit(126);
        exec($NODE, $SCRIPT, JSON::PP->new->canonical->encode(\%cfg))
            or POSIX::_exit(127);
    }

    return $h;
}

sub node_running {
    my ($h) = @_;
    return 0 unless $h->{pid};
    if (waitpid($h->{pid}, WNOHANG) == $h->{pid}) {
        $h->{rc} = $? >> 8;
        delete $h->{pid};
        return 0;
    }
    return 1;
}

sub node_wait {
    my ($h, $timeout) = @_;

    Test::Ldseg::wait_for(sub { !node_running($h) }, $timeout);
    if (node_running($h)) {
        kill 'KILL', $h->{pid};
        waitpid($h->{pid}, 0);
        delete $h->{pid};
        $h->{rc} = 'killed';
    }
    $h->{secs} = time - $h->{t0};

    my $out = $t->read_file(($h->{out} =~ m{([^/]+)$})[0]);
    my ($line) = $out =~ /^(\{.*\})\s*$/m;
    $h->{res} = $line ? Test::Ldseg::json($line) : undef;
    $h->{stderr} = $t->read_file(($h->{err} =~ m{([^/]+)$})[0]);

    if (!$h->{res} || $h->{rc} ne '0') {
        diag("node exit $h->{rc}; stdout:\n$out\nstderr:\n$h->{stderr}");
    }

    return $h->{res} || { calls => [], attempts => [], failed => [],
                          errors => [], unfinished => [] };
}

# the LaunchDarkly events the calls should produce, by key (canon form)

sub expected_events {
    my ($res) = @_;

    my %e;
    for my $c (@{ $res->{calls} }) {
        my $p = $c->{params};
        my $ms = ts_ms($p->{timestamp});
        if ($c->{type} eq 'track') {
            my $rev = $p->{properties}{revenue};
            $e{ $c->{id} } = {
                kind => 'custom', key => $p->{event},
                contextKeys => {
                    user => $p->{userId} // $p->{anonymousId},
                    defined $p->{anonymousId}
                        ? (unauthenticatedUser => $p->{anonymousId}) : (),
                },
                creationDate => $ms,
                metricValue => 0 + $rev,
                data => $p->{properties},
            };
        } elsif ($c->{type} eq 'alias'
                 || $c->{type} eq 'identify' && defined $p->{anonymousId})
        {
            $e{ $c->{id} } = {
                kind => 'alias', key => $p->{userId},
                previousKey => $p->{previousId} // $p->{anonymousId},
                contextKind => 'user',
                previousContextKind => 'anonymousUser',
                creationDate => $ms,
            };
        }
    }

    return { map { $_ => Test::Ldseg::canon($e{$_}) } keys %e };
}

sub ts_ms {
    my ($iso) = @_;
    my ($y, $mo, $d, $h, $mi, $s, $f) =
        $iso =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)\.(\d{3})Z$/
        or return undef;
    return Time::Local::timegm($s, $mi, $h, $d, $mo - 1, $y) * 1000 + $f;
}

sub first_few {
    my @l = @_;
    return join(',', @l > 5 ? (@l[0 .. 4], '...' . scalar(@l)) : @l);
}

my $prefix = sprintf 'n%x%04x', $$, int(rand 65536);

###############################################################################
# 1. tracks, identifies, aliases: exactly the expected events, no error

start_nginx('1m');

my $host = 'http://127.0.0.1:' . $t->port(8080);

my $h1 = node_start(host => $host, path => '/v1/batch',
    writeKey => 'wk-node-basic', prefix => "$prefix-b",
    tracks => 40, identifies => 10, aliases => 10, skipped => 1,
    flushAt => 7, flushInterval => 100, maxRetries => 3,
    closeTimeout => 20000);
my $r1 = node_wait($h1, 30);

note("node $node_version, $PKG $r1->{version}, write key sent as: "
     . "$r1->{auth}");

is($h1->{rc}, 0, 'scenario 1: node script finished');
is($r1->{version}, $pinned, "library is $PKG $pinned");
is(join(' | ', map { "$_->{id}: $_->{reason}" } @{ $r1->{failed} },
                    map { +{ id => $_->{id} // '-',
                             reason => "$_->{code} $_->{reason}" } }
                        @{ $r1->{errors} }), '',
   'the library reports no error');
is(scalar @{ $r1->{unfinished} } + ($r1->{closeTimedOut} ? 1 : 0), 0,
   'closeAndFlush() finished every call');

my %codes1;
$codes1{ $_->{status} // $_->{error} // '?' }++ for @{ $r1->{attempts} };
is(join(' ', map { "$_=$codes1{$_}" } sort keys %codes1),
   '200=' . scalar @{ $r1->{attempts} }, 'every request answered 200');

my %sent_ids1;
$sent_ids1{$_}++ for map { @{ $_->{ids} } } @{ $r1->{attempts} };
is(scalar(keys %sent_ids1), scalar @{ $r1->{calls} },
   scalar(@{ $r1->{calls} }) . ' calls in ' . scalar(@{ $r1->{attempts} })
   . ' batches of the library');

my $want1 = expected_events($r1);
my $nwant1 = keys %$want1;
is($nwant1, 60, '60 calls map to events (40 custom, 20 alias)');

is($mock->wait_events($nwant1, 15), $nwant1, "$nwant1 events delivered");
sleep 0.5;

my (%got1, %count1);
for my $e ($mock->events(client_id => 'NODE-BASIC')) {
    $count1{ $e->{key} }++;
    $got1{ $e->{key} } = Test::Ldseg::canon($e);
}

is(first_few(grep { $count1{$_} != 1 } sort keys %count1), '',
   'each event once');
is(first_few(grep { !$want1->{$_} } sort keys %got1), '',
   'no unexpected event (page, identify without anonymousId: none)');

my @wrong1 = grep { Test::Ldseg::canon_text($got1{$_} // 'null')
                    ne Test::Ldseg::canon_text($want1->{$_}) }
             sort keys %$want1;
is(first_few(@wrong1), '', 'every event as the translation says')
    or diag("want: " . Test::Ldseg::canon_text($want1->{ $wrong1[0] })
            . "\ngot:  " . Test::Ldseg::canon_text($got1{ $wrong1[0] }
                                                   // 'null'));

my %kinds;
$kinds{ $_->{kind} }++ for $mock->events(client_id => 'NODE-BASIC');
is(join(' ', map { "$_=$kinds{$_}" } sort keys %kinds),
   'alias=20 custom=40', 'kinds: 40 custom, 20 alias');

is(join(',', sort keys %{{ map { $_->{client_id} => 1 } $mock->posts }}),
   'NODE-BASIC', 'the write key selected the client-side ID');

my $s1 = $t->status;
is($s1 && $s1->{skipped}, 2, 'status: page and identify without'
   . ' anonymousId skipped');

note(sprintf 'scenario 1: %d calls, %d library requests, %d events in %d'
     . ' LaunchDarkly POSTs, node ran %.1f s', scalar @{ $r1->{calls} },
     scalar @{ $r1->{attempts} }, scalar(() = $mock->events),
     scalar(() = $mock->posts), $h1->{secs});

###############################################################################
# 2. backpressure: the smallest zone, LaunchDarkly down, then back

$t->stop;
$mock->script(default => { status => 503 });

my $ZONE = 8 * (POSIX::sysconf(POSIX::_SC_PAGESIZE()) || 4096) / 1024;
start_nginx("${ZONE}k");

my $posts_before = () = $mock->posts;
my $t2 = time;

my $h2 = node_start(host => $host, path => '/v1/batch',
    writeKey => 'wk-node-pressure', prefix => "$prefix-p",
    tracks => 300, pad => 300,
    flushAt => 10, flushInterval => 50, maxRetries => 40,
    closeTimeout => 45000);

# until the queue is full and LaunchDarkly has refused a few POSTs

my ($full, $down) = (0, 0);
Test::Ldseg::wait_for(sub {
    my $s = $t->status;
    $full = $s ? $s->{rejected_reasons}{queue_full} : 0;
    $down = grep { $_->{status} eq '503' } $mock->posts;
    return $full >= 10 && $down >= 3;
}, 20);
my $outage_full = $full;
my $q = $t->status;

cmp_ok($full, '>=', 10, "queue full: $full messages answered 503");
cmp_ok($down, '>=', 3, "LaunchDarkly down: $down POSTs answered 503");

sleep 1;
$mock->script(default => { status => 202 });
my $recovered = time;

my $r2 = node_wait($h2, 50);

my %sent2 = map { $_->{id} => 1 } @{ $r2->{calls} };
my $nsent2 = keys %sent2;

my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => [ keys %sent2 ],
    match => qr/^\Q$prefix-p-\E/, timeout => 20);

is($h2->{rc}, 0, 'scenario 2: node script finished');

my (%codes2, %tries, %acked2, $ra, %last, $min_gap);
for my $a (@{ $r2->{attempts} }) {
    my $c = $a->{status} // 'error';
    $codes2{$c}++;
    $ra //= $a->{retryAfter} if $c eq '503';
    my $batch = join ',', @{ $a->{ids} };
    $tries{$batch}++;

    # how long the library waited after a 503 before it tried again
    if (defined $last{$batch}) {
        my $gap = $a->{at} - $last{$batch};
        $min_gap = $gap if !defined $min_gap || $gap < $min_gap;
    }
    $last{$batch} = $a->{at} + ($a->{ms} // 0);
    if ($c eq '200') {
        $acked2{$_}++ for @{ $a->{ids} };
    }
}
my $max_tries = 0;
$max_tries < $_ and $max_tries = $_ for values %tries;

cmp_ok($codes2{503} // 0, '>', 0, 'the library got 503s');
is($ra, '1', '503 with Retry-After: 1');
cmp_ok($max_tries, '>', 1, "the library retried (at most $max_tries tries"
       . " of one batch)");
is(join(' | ', map { "$_->{id}: $_->{reason}" } @{ $r2->{failed} },
                    map { +{ id => $_->{id} // '-',
                             reason => "$_->{code} $_->{reason}" } }
                        @{ $r2->{errors} }), '',
   'the library reports no error: every batch accepted in the end');
is(scalar(keys %acked2), $nsent2, "ldseg acked all $nsent2 events");
is(first_few(grep { $acked2{$_} > 1 } sort keys %acked2), '',
   'and each once (a refused batch is refused whole)');

is(first_few(@{ $r->{missing} }), '', 'every sent event delivered');
is($r->{delivered}, $nsent2, "delivered == sent ($nsent2)");
is(first_few(@{ $r->{dup_other_id} }), '',
   'duplicates carry the payload ID of the first copy');
is(first_few(@{ $r->{unacked} }), '', 'nothing else delivered');

my $s2;
Test::Ldseg::wait_for(sub { $s2 = $t->status;
                            $s2 && $s2->{queue}{events} == 0 }, 10);
is($s2 && $s2->{dropped}, 0, 'status: nothing dropped');
is($s2 && $s2->{queue}{events}, 0, 'status: queue drained');

my %ld;
$ld{ $_->{status} }++ for grep { $_->{client_id} eq 'NODE-PRESSURE' }
                          $mock->posts;

note(sprintf 'scenario 2: zone %dk, node %s: %d events in %d batches;'
     . ' library requests %s (most tries of one batch %d, shortest wait'
     . ' after a 503 %s ms with Retry-After %s s);'
     . ' queue_full %d at the switch (queue %d events, %d bytes), %d in all;'
     . ' LaunchDarkly POSTs %s; %s; recovered %.1f s after the start,'
     . ' node done %.1f s after that',
     $ZONE, $node_version, $nsent2, scalar(keys %tries),
     join(' ', map { "$_=$codes2{$_}" } sort keys %codes2), $max_tries,
     $min_gap // '-', $ra // '-',
     $outage_full, $q ? $q->{queue}{events} : -1,
     $q ? $q->{queue}{bytes} : -1,
     $s2 ? $s2->{rejected_reasons}{queue_full} : -1,
     join(' ', map { "$_=$ld{$_}" } sort keys %ld),
     Test::Ldseg::figures('delivery', $r),
     $recovered - $t2, $t2 + $h2->{secs} - $recovered);

###############################################################################
