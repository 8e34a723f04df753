#!/usr/bin/perl

# The export's dead letter: an SDK event whose Segment message would be
# larger than Segment's 32 KB is never cut and never queued (Segment would
# refuse the whole batch): with ldseg_dead_letter it is written there
# whole, as one line naming the write key by its label, counted as
# dead_lettered (in total and per write key, JSON and Prometheus) and
# logged; without one it is dropped, counted and logged.  The other events
# of the post go on to Segment, and LaunchDarkly gets the post unchanged
# either way.  A batch Segment keeps refusing with 400 is dead-lettered
# the same way as on LaunchDarkly's side.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::LdsegMock;

use JSON::PP;
use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(27);
my $ld = $t->mock;

mkdir $t->testdir . '/segment';
mkdir $t->testdir . '/dead';

my $seg = Test::LdsegMock->new(dir => $t->testdir . '/segment',
                               default => { status => 200 },
                               steps => [ { status => 400,
                                            body_match => 'poison',
                                            times => 1000000 } ]);
my $SEG = $seg->url;

my $CONF = <<'EOF';
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_flush_interval 100ms;
    ldseg_retry_max_delay 1s;
    %%DEAD%%

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location / {
            ldseg_export on;
            ldseg_export_url %%SEGMENT%%;
            ldseg_export_write_key wk-large-key;
            ldseg_pass @launchdarkly;
        }

        location @launchdarkly {
            proxy_pass %%MOCK%%;
        }

        location = /status {
            ldseg_status;
        }
    }
}
EOF

sub conf {
    my ($dead) = @_;
    (my $c = $CONF) =~ s/%%DEAD%%/$dead/;
    $c =~ s/%%SEGMENT%%/$SEG/g;
    return $c;
}

my $J = JSON::PP->new->utf8->canonical;
my $WK = Test::Ldseg::key_label('wk-large-key');
my $dead = $t->testdir . '/dead/dead.jsonl';
my $pad = 'x' x 40000;

sub body {
    my (@events) = @_;
    return '[' . join(',', @events) . ']';
}

my $large = qq({"kind":"custom","key":"big","creationDate":1700000000000,)
            . qq("contextKeys":{"user":"u-1"},"data":{"pad":"$pad"}});
my $small = qq({"kind":"custom","key":"small","creationDate":1700000000001,)
            . qq("contextKeys":{"user":"u-1"}});
my $poison = qq({"kind":"custom","key":"poison","creationDate":1,)
             . qq("contextKeys":{"user":"u-1"}});

sub post {
    my ($body, $pid) = @_;
    my ($code) = $t->http_post('/bulk', $body, 'Authorization' => 'sdk-key',
                               'X-LaunchDarkly-Payload-ID' => $pid);
    return $code;
}

sub seg_messages {
    return map { @{ ($J->decode($_->{body}) || {})->{batch} || [] } }
           grep { $_->{method} eq 'POST' && ($_->{status} // '') eq '200' }
           $seg->requests;
}

sub dead_lines {
    open my $fh, '<', $dead or return ();
    my @l = map { Test::Ldseg::json($_) } <$fh>;
    close $fh;
    return @l;
}

###############################################################################
# with ldseg_dead_letter

$t->write_file_expand('nginx.conf',
    conf("ldseg_dead_letter %%TESTDIR%%/dead/dead.jsonl;\n"
         . "    ldseg_dead_letter_after 2;"));
$t->run;

my $P1 = '6f1c0000-0000-4000-8000-000000000001';
my $P2 = '6f1c0000-0000-4000-8000-000000000002';
my $b1 = body($large, $small);

is(post($b1, $P1), 202, 'the post with a message over 32 KB: LaunchDarkly\'s'
   . ' answer');
is(join('|', map { $_->{body} } grep { $_->{method} eq 'POST' }
                                $ld->requests), $b1,
   'LaunchDarkly got the post unchanged');

ok(Test::Ldseg::wait_for(sub { grep { $_->{messageId} eq "$P1-1" }
                               seg_messages() }, 10),
   'the other event of the post went on to Segment');

is(post(body($poison), $P2), 202, 'a post Segment refuses: passed on');

ok(Test::Ldseg::wait_for(sub { dead_lines() >= 2 }, 15),
   'two dead-letter lines');

my @dl = dead_lines();
my ($tl) = grep { ($_->{reason} // '') eq 'too_large' } @dl;
my ($rl) = grep { ($_->{status} // 0) == 400 } @dl;
my $m = $tl ? $tl->{events}[0] : {};

is(join(' ', map { $_ // 'null' } @{ $tl || {} }{qw(write_key payload_id
                                                     status)}),
   "$WK null null", 'too large: the write key\'s label, no payload ID, no'
   . ' status');
is(scalar @{ $tl->{events} || [] }, 1, 'too large: one message');
is(join(' ', map { $_ // 'none' } $m->{messageId}, $m->{event},
        $m->{userId}, $m->{properties}{key}),
   "$P1-0 custom u-1 big", 'too large: the Segment message of the event');
is(length($m->{properties}{data}{pad} // ''), 40000,
   'too large: written whole, never cut');
cmp_ok(length($J->encode($m)), '>', 32768, 'too large: over 32 KB indeed');
is(scalar(grep { $_->{messageId} eq "$P1-0" } seg_messages()), 0,
   'too large: never sent to Segment');

is(join(' ', map { $_ // 'null' } @{ $rl || {} }{qw(write_key status)},
        map { $_->{messageId} } @{ $rl->{events} || [] }),
   "$WK 400 $P2-0", 'refused by Segment with 400: dead-lettered, status'
   . ' and message');
like($rl && $rl->{payload_id} // '', qr/^[0-9a-f-]{36}$/,
     'refused: the payload ID of the batch');

is((stat $dead)[2] & 0777, 0600, 'the dead-letter file is 0600');
unlike(do { local (@ARGV, $/) = ($dead); <> // '' }, qr/wk-large-key/,
       'no write key in clear in the dead letter');

my $st = $t->status;
my ($wk) = grep { $_->{write_key} eq $WK } @{ $st->{export}{write_keys} };
is(join(' ', map { "$_=" . ($st->{export}{$_} // 'none') }
             qw(exported rejected dead_lettered dropped)),
   'exported=2 rejected=0 dead_lettered=2 dropped=0',
   'status: the large message counted as dead-lettered, not rejected');
is($wk && $wk->{dead_lettered}, 2, 'status: dead-lettered for the write key');

my (undef, undef, $prom) = $t->http_get('/status?format=prometheus');
like($prom, qr/^ldseg_export_dead_lettered_total 2$/m,
     'prometheus: ldseg_export_dead_lettered_total');
like($prom, qr/^ldseg_export_write_key_dead_lettered_total
               \{write_key="\Q$WK\E"\}\ 2$/mx,
     'prometheus: per write key');

$t->stop;

my $log = $t->read_file('error.log');
my $big = '1 exported messages for write key "wk-l..." are larger than'
          . ' Segment\'s 32 KB';
like($log, qr/\[warn\].*\Q$big\E, they go to "ldseg_dead_letter"/,
     'logged at warn');
like($log, qr/\[warn\].*\QSegment refused 1 events of write key "wk-l..."\E
              \ with\ status\ 400/x, 'the refused batch logged');

###############################################################################
# without ldseg_dead_letter: dropped, counted and logged

$t->write_file_expand('nginx.conf', conf(''));
$t->run;

my $P3 = '6f1c0000-0000-4000-8000-000000000003';

is(post(body($large, $small), $P3), 202,
   'without ldseg_dead_letter: LaunchDarkly\'s answer');
ok(Test::Ldseg::wait_for(sub { grep { $_->{messageId} eq "$P3-1" }
                               seg_messages() }, 10),
   'the other event went on to Segment');

$st = $t->status;
($wk) = grep { $_->{write_key} eq $WK } @{ $st->{export}{write_keys} };
is(join(' ', map { "$_=" . ($st->{export}{$_} // 'none') }
             qw(rejected dead_lettered dropped)),
   'rejected=0 dead_lettered=0 dropped=1',
   'status: dropped, neither rejected nor dead-lettered');
is($wk && $wk->{dropped}, 1, 'status: dropped for the write key');
is(scalar(grep { $_->{messageId} eq "$P3-0" } seg_messages()), 0,
   'never sent to Segment');

$t->stop;

like($t->read_file('error.log'),
     qr/\[warn\].*\Q$big and dropped: no "ldseg_dead_letter"\E/,
     'logged at warn');

###############################################################################
