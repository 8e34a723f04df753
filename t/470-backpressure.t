#!/usr/bin/perl

# Backpressure, no spool, LaunchDarkly down: a small zone (64k) fills and
# then requests get 503 with the Retry-After of ldseg_retry_after (7s) and
# code queue_full, never a 200 whose events are then lost; after recovery
# every 200-acked event arrives and no refused one does.  With
# ldseg_queue_limit 16k in a 1m zone the 503s start once ~16k bytes wait.
# With a spool, the 64k zone hands spooled payloads' memory back and takes
# many more events before the 503s; all of them arrive too.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;
use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(24);
my $mock = $t->mock(default => { status => 503 });

my $conf = <<'EOF';
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg %%ZONE%%;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 10;
    ldseg_retry_max_delay 2s;
    ldseg_retry_after 7s;
    %%LIMIT%%

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id BACKPRESSURE;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

sub conf {
    my ($zone, $limit) = @_;
    (my $c = $conf) =~ s/%%ZONE%%/$zone/;
    $c =~ s/%%LIMIT%%/$limit/;
    $t->write_file_expand('nginx.conf', $c);
}

conf('64k', '');
$t->run;

###############################################################################

# 1. a 64k zone fills up

my $load = $t->load(name => 'b', clients => 2, count => 250, pad => 300,
                    interval => 0.005);
my $res = $load->wait(60);

my @codes = sort keys %{ $res->{codes} };
is(join(' ', @codes), '200 503', 'answers: 200, then 503')
    or diag(explain $res->{codes});
cmp_ok(scalar @{ $res->{acked} }, '>', 10,
       scalar(@{ $res->{acked} }) . ' messages fit');
cmp_ok(scalar @{ $res->{refused} }, '>', 100,
       scalar(@{ $res->{refused} }) . ' messages refused');
is(join(' ', keys %{ $res->{retry_after} }), '7',
   'every 503 has Retry-After: 7 (ldseg_retry_after)');

my ($code, $h, $body) = $t->http_post('/v1/track', JSON::PP->new->encode({
    userId => 'u', event => 'b-extra', properties => { pad => 'x' x 300 } }));
my $j = Test::Ldseg::json($body) || {};
is("$code " . ($h->{'retry-after'} // '-') . ' ' . ($j->{code} // '-'),
   '503 7 queue_full', 'a further message: 503, Retry-After 7, queue_full');

my $s = $t->status;
is($s && $s->{queue}{events}, scalar @{ $res->{acked} },
   'every acked message is queued');

# recovery

$mock->script(default => { status => 202 });
my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => $res->{acked},
    maybe => $res->{noanswer}, sent => scalar @{ $res->{sent} },
    match => qr/^b-/, timeout => 30);
diag(Test::Ldseg::figures('backpressure 64k zone', $r, $res));
is(scalar @{ $r->{missing} }, 0, 'every 200-acked event delivered')
    or diag(scalar(@{ $r->{missing} }) . ' missing');
is(join(',', @{ $r->{unacked} }), '', 'no refused event delivered');
is($r->{duplicated}, 0, 'none twice');

Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{queue}{events} == 0 }, 10);
is($s && $s->{dropped}, 0, 'nothing dropped');
($code) = $t->http_post('/v1/track', JSON::PP->new->encode({
    userId => 'u', event => 'b-after' }));
is($code, 200, 'accepted again once drained');

# 2. ldseg_queue_limit 16k in a 1m zone

$t->stop;
$mock->script(default => { status => 503 });
conf('1m', 'ldseg_queue_limit 16k;');
$t->run;

my $J = JSON::PP->new->utf8->canonical;
my (@acked, @refused, $first_503, $bytes_at_503, $other);
my $msg_bytes = 0;

for my $i (1 .. 400) {
    my $id = "q-$i";
    my ($c, $hh) = $t->http_post('/v1/track', $J->encode({
        userId => "u-$id", event => $id,
        properties => { pad => 'x' x 200 } }));
    if ($c == 200) {
        push @acked, $id;
        if (!$msg_bytes) {
            my $st = $t->status;
            $msg_bytes = $st->{queue}{bytes} if $st;
        }
    } elsif ($c == 503) {
        push @refused, $id;
        if (!$first_503) {
            $first_503 = $hh;
            my $st = $t->status;
            $bytes_at_503 = $st && $st->{queue}{bytes};
        }
        last if @refused >= 20;
    } else {
        $other = $c;
        last;
    }
}

is($other, undef, 'only 200 and 503');
ok($first_503, sprintf '503 after %d messages of ~%d bytes',
   scalar @acked, $msg_bytes);
is($first_503 && $first_503->{'retry-after'}, 7, 'Retry-After: 7');
ok(defined $bytes_at_503 && $bytes_at_503 <= 16384 + $msg_bytes
   && $bytes_at_503 >= 16384 - 2 * $msg_bytes,
   "queue.bytes at the first 503 near the 16k limit: "
   . ($bytes_at_503 // 'undef'));
$s = $t->status;
is($s && $s->{queue}{size}, 1024 * 1024, 'in a 1m zone');

$mock->script(default => { status => 202 });
$r = Test::Ldseg::wait_delivered(mock => $mock, acked => \@acked,
    sent => @acked + @refused, match => qr/^q-/, timeout => 30);
diag(Test::Ldseg::figures('queue_limit 16k', $r)
     . sprintf(' refused503=%d | queue.bytes at first 503: %d (%d per event)',
               scalar @refused, $bytes_at_503 // -1, $msg_bytes));
is(scalar @{ $r->{missing} }, 0, 'every 200-acked event delivered');
is(join(',', @{ $r->{unacked} }), '', 'no refused event delivered');

# 3. a 64k zone with a spool (max_size=1m)

my $spool = $t->testdir . '/spool';
mkdir $spool or die "mkdir $spool: $!\n";

$t->stop;
$mock->script(default => { status => 503 });
conf('64k', "ldseg_spool $spool max_size=1m delay=200ms fsync=off;");
$t->run;

$load = $t->load(name => 'p', clients => 2, count => 1500, pad => 300,
                 interval => 0.02);
my $t0 = time;
Test::Ldseg::wait_for(sub { my $x = $load->results;
                            @{ $x->{refused} } >= 200 }, 60);
$res = $load->stop(30);
my $took = time - $t0;

$s = $t->status;
is(join(' ', sort keys %{ $res->{codes} }), '200 503',
   'with a spool: answers 200, then 503') or diag(explain $res->{codes});
cmp_ok(scalar @{ $res->{acked} }, '>', 3 * 95,
       'with a spool: many more messages fit (' . scalar(@{ $res->{acked} })
       . ')');
is(join(' ', keys %{ $res->{retry_after} }), '7', 'Retry-After: 7');
note(sprintf 'spool: %d events / %d bytes on disk at the end, zone %d events',
     $s->{spool}{events} // -1, $s->{spool}{bytes} // -1,
     $s->{queue}{events} // -1);

$mock->script(default => { status => 202 });
$r = Test::Ldseg::wait_delivered(mock => $mock, acked => $res->{acked},
    maybe => $res->{noanswer}, sent => scalar @{ $res->{sent} },
    match => qr/^p-/, timeout => 40);
diag(Test::Ldseg::figures('backpressure 64k zone + spool', $r, $res)
     . sprintf(' | spool at the end of the load: %d events, %d bytes',
               $s->{spool}{events} // -1, $s->{spool}{bytes} // -1));
is(scalar @{ $r->{missing} }, 0, 'every 200-acked event delivered')
    or diag(scalar(@{ $r->{missing} }) . ' missing');
is(join(',', @{ $r->{unacked} }), '', 'no refused event delivered');
is(join(',', @{ $r->{dup_other_id} }), '',
   'duplicates carry the payload ID of the first copy');

###############################################################################
