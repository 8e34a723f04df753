#!/usr/bin/perl

# ldseg_dedupe: a message whose messageId (with its write key) was accepted
# within the window is answered 200 and sends nothing (status: duplicate),
# across workers and reloads:
# - a client that sends a batch again after a lost answer does not count a
#   conversion twice: LaunchDarkly receives every event once;
# - the same messageId twice in one batch, or a retry while the first
#   request is still being accepted (503 message_in_progress, then 200);
# - a message refused with 503 (queue full) is not remembered: its retry
#   gets through once there is room;
# - scoped by the write key, bounded in size (invalid_message_id);
# - a zone too small for the window forgets the oldest first (evicted);
# - an entry older than the window is forgotten;
# - a reload keeps what the zone remembers.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;
use POSIX qw(_exit);

###############################################################################

my $t = Test::Ldseg->new()->plan(33);
my $mock = $t->mock;

my $CONF = <<'EOF';
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 4m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_retry_max_delay 1s;
    ldseg_queue_limit 64k;
    ldseg_retry_after 1s;

    DEDUPE

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id DEDUPE-ID;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

sub start {
    my ($dedupe) = @_;
    (my $c = $CONF) =~ s/\bDEDUPE\b/$dedupe/;
    $t->write_file_expand('nginx.conf', $c);
    $t->run;
}

start('ldseg_dedupe zone=dd:1m;');

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2022-05-04T03:02:03.000Z';
my $K1 = Test::Ldseg::basic_auth('wk-one');
my $K2 = Test::Ldseg::basic_auth('wk-two');

sub post {
    my ($path, $body, @h) = @_;
    my ($code, undef, $raw) = $t->http_post($path,
        ref $body ? $J->encode($body) : $body, @h);
    return ($code, Test::Ldseg::json($raw), $raw);
}

sub track {
    my ($key, $id, %m) = @_;
    return { type => 'track', userId => 'u', event => $key, timestamp => $TS,
             messageId => $id, properties => { revenue => 1 }, %m };
}

# delivered events by key, once the mock has $n events (or 10 s passed)

sub delivered {
    my ($n) = @_;
    $mock->wait_events($n, 10);
    my %e;
    $e{ $_->{key} }++ for $mock->events;
    return \%e;
}

sub counts {
    my ($e, @keys) = @_;
    return join ' ', map { "$_=" . ($e->{$_} // 0) } @keys;
}

my $sent = 0;

###############################################################################

# a batch sent again after a lost answer

my @batch = map { track("R-$_", "r-$_") } 1 .. 5;

my ($code, $j, $raw) = post('/v1/batch', { batch => \@batch },
                            Authorization => $K1);
ok($code == 200 && $j && $j->{success}, 'batch: 200') or diag($raw);
($code, $j, $raw) = post('/v1/batch', { batch => \@batch },
                         Authorization => $K1);
ok($code == 200 && $j && $j->{success} && !$j->{rejected},
   'the same batch again: 200, nothing rejected') or diag($raw);
$sent += 5;

my $e = delivered($sent);
is(counts($e, map { "R-$_" } 1 .. 5), 'R-1=1 R-2=1 R-3=1 R-4=1 R-5=1',
   'LaunchDarkly receives each conversion once');

my $s = $t->status;
ok($s && $s->{duplicate} == 5 && $s->{received} == 10
   && $s->{accepted} == 10 && $s->{translated} == 5,
   'status: received 10, accepted 10, duplicate 5, translated 5')
    or diag($J->encode($s || {}));

# twice in one batch: the first is sent

($code, $j) = post('/v1/batch', { batch => [ track('T-first', 't-1'),
                                             track('T-second', 't-1') ] },
                   Authorization => $K1);
is($code, 200, 'one messageId twice in a batch: 200');
$sent += 1;

# the scope is the write key: the same messageId for another write key is
# another message; analytics.js's body writeKey is the same scope as Basic

($code) = post('/v1/track', track('S-other-key', 'r-1'),
               Authorization => $K2);
is($code, 200, 'r-1 for another write key: 200');
$sent += 1;

($code, $j) = post('/v1/t', $J->encode({ %{ track('S-body-key', 'r-2') },
                                         writeKey => 'wk-one' }),
                   'Content-Type' => 'text/plain');
ok($code == 200 && $j && $j->{success},
   'r-2 again with the write key in the body: 200');

($code) = post('/v1/track', track('S-single', 'r-3'), Authorization => $K1);
is($code, 200, 'r-3 again on a single-message endpoint: 200');

# a page (no event) is remembered too; a rejected message is not

($code) = post('/v1/page', { userId => 'u', messageId => 'p-1' },
               Authorization => $K1) for 1 .. 2;

($code, $j) = post('/v1/track', { userId => 'u', messageId => 'x-1' },
                   Authorization => $K1);
is($code, 400, 'x-1 without event: 400');
($code) = post('/v1/track', track('X-valid', 'x-1'), Authorization => $K1);
is($code, 200, 'x-1 valid after its rejection: 200');
$sent += 1;

# the bound on messageId

($code, $j) = post('/v1/track', track('L-257', 'l' x 257),
                   Authorization => $K1);
ok($code == 400 && $j && ($j->{code} // '') eq 'invalid_message_id',
   'messageId of 257 bytes: 400 invalid_message_id');
($code) = post('/v1/track', track('L-256', 'l' x 256), Authorization => $K1)
    for 1 .. 2;
is($code, 200, 'messageId of 256 bytes: 200');
$sent += 1;

$e = delivered($sent);
is(counts($e, qw(T-first T-second S-other-key S-body-key S-single X-valid
                 L-256 L-257)),
   'T-first=1 T-second=0 S-other-key=1 S-body-key=0 S-single=0 X-valid=1 '
   . 'L-256=1 L-257=0', 'what was delivered');

$s = $t->status;
ok($s && $s->{duplicate} == 10 && $s->{skipped} == 1
   && $s->{skipped_reasons}{no_event_for_type} == 1
   && $s->{rejected_reasons}{invalid_message_id} == 1,
   'status: duplicate 10, the page skipped once, invalid_message_id 1')
    or diag($J->encode($s || {}));
ok($s && ref $s->{dedupe} eq 'HASH' && $s->{dedupe}{entries} == 10
   && $s->{dedupe}{size} == 1048576 && $s->{dedupe}{evicted} == 0,
   'status: dedupe entries, size, nothing evicted')
    or diag($J->encode($s->{dedupe} || {}));

###############################################################################

# many clients at once, in both workers, sending the same batch: each
# answer is 200, or 503 message_in_progress while another request holds a
# messageId; the client retries after a 503 (as Segment's libraries do)

my @cbatch = map { track("C-$_", "c-$_") } 1 .. 100;
my $body = $J->encode({ batch => \@cbatch });
my $dir = $t->testdir;
my @pids;

for my $n (1 .. 8) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        my @seen;
        for (1 .. 100) {
            my ($c, undef, $r) = $t->http_post('/v1/batch', $body,
                                               Authorization => $K1);
            my $x = Test::Ldseg::json($r) || {};
            push @seen, "$c:" . ($x->{code} // ($x->{success} ? 'ok' : '?'));
            last if $c == 200;
            select undef, undef, undef, 0.05;
        }
        open my $fh, '>', "$dir/client-$n.txt" or _exit(1);
        print $fh join("\n", @seen), "\n";
        close $fh;
        _exit(0);
    }

    push @pids, $pid;
}

waitpid($_, 0) for @pids;

my (@answers, @last);
for my $n (1 .. 8) {
    my @l = split /\n/, $t->read_file("client-$n.txt");
    push @answers, @l;
    push @last, $l[-1] // 'none';
}

is(join(',', grep { !/^(200:ok|503:message_in_progress)$/ } @answers), '',
   'concurrent clients: every answer 200 or 503 message_in_progress');
is(scalar(grep { $_ eq '200:ok' } @last), 8, 'each client ends with 200');
note(scalar(grep { /^503/ } @answers) . ' answers were 503');
$sent += 100;

$e = delivered($sent);
select undef, undef, undef, 0.5;
$e = delivered($sent);
is(join(',', grep { ($e->{"C-$_"} // 0) != 1 } 1 .. 100), '',
   'concurrent clients: each event delivered once');

###############################################################################

# a reload keeps what the zone remembers

$s = $t->status;
my ($entries, $dups) = ($s->{dedupe}{entries}, $s->{duplicate});
ok($t->reload, 'reload');
($code, $j) = post('/v1/batch', { batch => \@batch }, Authorization => $K1);
is($code, 200, 'the first batch again after the reload: 200');
$s = $t->status;
ok($s && $s->{dedupe}{entries} == $entries
   && $s->{duplicate} == $dups + 5,
   'after the reload: same entries, 5 more duplicates')
    or diag($J->encode($s || {}));

###############################################################################

# a message refused with 503 (queue full) is not remembered

$mock->script(default => { status => 503 });

my ($full, $qid);
for my $i (1 .. 200) {
    ($code, $j) = post('/v1/track', track("Q-$i", "q-$i",
                                          properties => { pad => 'p' x 2000 }),
                       Authorization => $K1);
    if ($code == 503) {
        ($full, $qid) = ($j, $i);
        last;
    }
}
ok($full && ($full->{code} // '') eq 'queue_full', 'queue full: 503');
$qid //= 0;

($code, $j) = post('/v1/track', track("Q-$qid", "q-$qid",
                                      properties => { pad => 'p' x 2000 }),
                   Authorization => $K1);
ok($code == 503 && $j && ($j->{code} // '') eq 'queue_full',
   'the refused message again while still full: 503 queue_full, '
   . 'not a duplicate');

$mock->script();
Test::Ldseg::wait_for(sub { my $x = $t->status;
                            $x && $x->{queue}{events} == 0 }, 20);

($code) = post('/v1/track', track("Q-$qid", "q-$qid"), Authorization => $K1);
is($code, 200, 'its retry once there is room: 200');
($code) = post('/v1/track', track("Q-$qid", "q-$qid"), Authorization => $K1);
is($code, 200, 'and once more: 200 (a duplicate)');

$sent += $qid;
$e = delivered($sent);
is(join(',', grep { ($e->{"Q-$_"} // 0) != 1 } 1 .. $qid), '',
   'every Q message delivered once, the refused one too');

$s = $t->status;
is($s && $s->{rejected_reasons}{queue_full}, 2, 'status: queue_full 2');

###############################################################################

# a zone too small for the window: the oldest are forgotten first

$t->stop;
start('ldseg_dedupe zone=tiny:32k;');

my $n = 0;
for my $b (1 .. 12) {
    ($code) = post('/v1/batch', { batch => [
        map { $n++; { type => 'page', userId => 'u', messageId => "e-$n" } }
            1 .. 100 ] }, Authorization => $K1);
}
is($code, 200, '1200 messageIds into a 32k zone');

$s = $t->status;
ok($s && $s->{dedupe}{evicted} > 0 && $s->{dedupe}{entries} < 1200
   && $s->{dedupe}{unremembered} == 0,
   'status: entries evicted, none unremembered')
    or diag($J->encode($s->{dedupe} || {}));

($code) = post('/v1/batch', { batch => [
    { type => 'page', userId => 'u', messageId => 'e-1' },
    { type => 'page', userId => 'u', messageId => "e-$n" } ] },
    Authorization => $K1);
$s = $t->status;
ok($code == 200 && $s->{duplicate} == 1 && $s->{skipped} == 1201,
   'the oldest is forgotten (skipped again), the newest remembered')
    or diag($J->encode($s));

# a batch larger than the zone can hold is accepted, not remembered

($code) = post('/v1/batch', { batch => [
    map { { type => 'page', userId => 'u', messageId => ('z' x 200) . $_ } }
        1 .. 2000 ] }, Authorization => $K1);
$s = $t->status;
ok($code == 200 && $s->{dedupe}{unremembered} > 0,
   'a batch the zone cannot hold: 200, counted unremembered')
    or diag($J->encode($s->{dedupe} || {}));
$t->allow_log(qr/ldseg_dedupe zone/);

###############################################################################

# the window: an entry older than it is forgotten

$t->stop;
start('ldseg_dedupe zone=dd:1m window=1s;');

($code) = post('/v1/track', track('W-1', 'w-1'), Authorization => $K1)
    for 1 .. 2;
$s = $t->status;
is($s && $s->{duplicate}, 1, 'within the window: a duplicate');

select undef, undef, undef, 1.5;

($code) = post('/v1/track', track('W-2', 'w-1'), Authorization => $K1);
$s = $t->status;
ok($code == 200 && $s->{duplicate} == 1 && $s->{translated} == 2,
   'after the window: accepted as new');

###############################################################################
