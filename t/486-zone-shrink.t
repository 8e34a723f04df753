#!/usr/bin/perl

# Shrinking the zone on reload, 2 workers, LaunchDarkly down while the
# zone shrinks.
#
# (a) With ldseg_spool (delay=0): 1.4 MB of events, every one of them also
#     on disk, wait in a 4m zone; a reload to 1m goes through, what does not
#     fit in memory stays in the spool as disk-only payloads (nothing
#     dropped), and once LaunchDarkly is back every event is delivered.
# (b) Without a spool: the same queue does not fit in 1m anywhere, so the
#     reload is refused with an [emerg] naming the zone ("too small for the
#     queued events"); the old workers keep their pids, their 4m zone and
#     their queue, go on answering 200, and deliver everything later.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::Ldseg::Delivery qw(post_events wait_ld_delivered delivered_ok
                             ld_figures);
use Test::Ldseg::Reload qw(reload_refused);

###############################################################################

my $t = Test::Ldseg->new()->plan(19);
my $mock = $t->mock(default => { status => 503 });

# the refused reload of (b), and nothing else, may be [emerg] in error.log

$t->allow_log(qr/\[emerg\].*too small for the queued events/);

my $spool = $t->testdir . '/spool';
mkdir $spool or die "mkdir $spool: $!\n";

my $conf = <<'EOF';
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone %%ZONE%%;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 5;
    ldseg_retry_max_delay 1s;
    ldseg_shutdown_timeout 1s;
    %%SPOOL%%

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id SHRINK;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

sub conf {
    my ($zone, $spool) = @_;
    (my $c = $conf) =~ s/%%ZONE%%/$zone/;
    $c =~ s/%%SPOOL%%/$spool \/\/ ''/e;
    $t->write_file_expand('nginx.conf', $c);
}

sub st {
    my ($s) = @_;
    $s ||= $t->status or return 'no status';
    return "events=$s->{queue}{events} size=$s->{queue}{size}";
}

# 1400 events of about 1.1 KB: 1.5 MB of queue, more than a 1m zone holds;
# 280 payloads of 5 events (the payloads themselves need room too)

my $N = 1400;
my %big = (per_request => 20, pad => 1000);

###############################################################################

# (a) with a spool

conf('ldseg 4m', "ldseg_spool $spool delay=0;");
$t->run;

my $a = post_events($t, 'sa', $N, %big);
is(scalar @{ $a->{acked} }, $N, "(a) $N events accepted")
    or diag(explain $a->{codes});

my $s;
Test::Ldseg::wait_for(sub {
    $s = $t->status;
    $s && $s->{queue}{events} == $N && $s->{spool}{events} == $N;
}, 15);
is(($s && "$s->{queue}{events} $s->{spool}{events}"), "$N $N",
   '(a) every queued event also on disk');

conf('ldseg 1m', "ldseg_spool $spool delay=0;");
ok($t->reload, '(a) reload: zone 4m -> 1m');

$s = $t->status;
is(($s && "size=$s->{queue}{size} dropped=$s->{dropped}"),
   'size=1048576 dropped=0', '(a) 1m zone in effect, nothing dropped');
is($s && $s->{queue}{events}, $N,
   "(a) all $N events still queued, in memory or on disk only");
note('(a) after the shrink: ' . st($s) . ' spool.events='
     . ($s && $s->{spool}{events}));

$mock->script(default => { status => 202 });

my $r = wait_ld_delivered(mock => $mock, acked => $a->{acked},
                          match => qr/^sa-/, timeout => 15);
diag(ld_figures('(a) shrink with spool', $r));
delivered_ok($r, '(a) shrink with spool');

Test::Ldseg::wait_for(sub {
    $s = $t->status;
    $s && $s->{queue}{events} == 0 && $s->{spool}{events} == 0;
}, 10);
is(($s && "$s->{queue}{events} $s->{spool}{events} $s->{dropped}"),
   '0 0 0', '(a) queue and spool drained, nothing dropped');

$t->stop;

###############################################################################

# (b) without a spool

$mock->script(default => { status => 503 });

conf('shrunk 4m');
$t->run;

my $b = post_events($t, 'sb', $N, %big);
is(scalar @{ $b->{acked} }, $N, "(b) $N events accepted")
    or diag(explain $b->{codes});
is(st(), "events=$N size=4194304", '(b) queued in the 4m zone');

conf('shrunk 1m');
my $rl = reload_refused($t, qr/\[emerg\].*too small for the queued events/,
                        15);
my ($emerg) = $rl->{log} =~ /^(.*\[emerg\].*)$/m;
ok($rl->{refused} && $emerg =~ /shrunk/,
   '(b) reload to 1m refused: [emerg] names the zone')
    or diag("error.log since the HUP:\n"
            . join("\n", grep { !/\[debug\]/ } split /\n/, $rl->{log}));
is("@{ $rl->{after} }", "@{ $rl->{before} }", '(b) the old workers stay');
is(st(), "events=$N size=4194304", '(b) queue and zone unchanged');

my $more = post_events($t, 'sc', 20);
is(join(' ', map { "$_:$more->{codes}{$_}" } sort keys %{ $more->{codes} }),
   '200:20', '(b) new POSTs answered 200');

$mock->script(default => { status => 202 });

$r = wait_ld_delivered(mock => $mock,
                       acked => [ @{ $b->{acked} }, @{ $more->{acked} } ],
                       match => qr/^s[bc]-/, timeout => 15);
diag(ld_figures('(b) refused shrink', $r));
delivered_ok($r, '(b) refused shrink');

Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{queue}{events} == 0 }, 10);
is(($s && "$s->{queue}{events} $s->{dropped}"), '0 0',
   '(b) queue drained, nothing dropped');

###############################################################################
