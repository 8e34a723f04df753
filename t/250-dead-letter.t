#!/usr/bin/perl

# A payload LaunchDarkly keeps refusing (400, not a refused ID) never blocks
# the payloads behind it.  With "ldseg_dead_letter PATH" and
# "ldseg_dead_letter_after N" it is tried N times, then written to PATH as
# one JSON line (payload_id, client_side_id, status, time, events; the file
# is 0600) and removed from the queue (status "dead_lettered").  Without
# ldseg_dead_letter it stays queued, behind newer payloads, and is retried.
# nginx -t refuses a dead_letter_after that is not a positive number.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;
use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(26);
my $mock = $t->mock;

# the mock refuses (400) every POST that holds the poison event

$mock->script(default => { status => 202 }, steps => [
    { status => 400, body_match => '"poison-', times => 1000000 } ]);

my $CONF = <<'EOF';
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 1;
    ldseg_retry_max_delay 1s;
    %%DEAD%%

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

sub conf {
    my ($dead) = @_;
    (my $c = $CONF) =~ s/%%DEAD%%/$dead/;
    return $c;
}

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2021-06-07T08:09:10.011Z';
my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

sub track {
    my ($id, $key) = @_;
    my ($code, undef, $body) = $t->http_post("/v1/track?id=$id",
        $J->encode({ userId => "u-$key", event => $key, timestamp => $TS,
                     properties => { n => 1 } }));
    diag("$key: $code $body") if $code != 200;
    return $code;
}

sub poison_posts {
    my ($id) = @_;
    return grep { $_->{client_id} eq $id && $_->{body} =~ /"poison-/ }
           $mock->posts;
}

# the poison goes first and is refused once before the normal events come:
# they queue up behind it

sub poison_first {
    my ($id, $key) = @_;
    return 0 unless track($id, $key) == 200;
    Test::Ldseg::wait_for(sub { poison_posts($id) >= 1 }, 10) or return 0;
    sleep 0.3;
    return 1;
}

sub delivered_once {
    my ($id, @keys) = @_;
    my %n;
    $n{ $_->{key} }++ for $mock->events(client_id => $id);
    return scalar grep { ($n{$_} // 0) == 1 } @keys;
}

###############################################################################

# nginx -t (today the directives are unknown: the "valid" checks fail, and
# "unknown directive" does not count as the value being refused)

$t->conf_ok(conf("ldseg_dead_letter %%TESTDIR%%/d.jsonl;\n"
                 . "    ldseg_dead_letter_after 1;"),
            'nginx -t: ldseg_dead_letter, ldseg_dead_letter_after 1');
$t->conf_fails(conf('ldseg_dead_letter_after 0;'),
               qr/^(?!.*unknown directive).*ldseg_dead_letter_after/,
               'nginx -t: ldseg_dead_letter_after 0 refused');
$t->conf_fails(conf('ldseg_dead_letter_after abc;'),
               qr/^(?!.*unknown directive).*ldseg_dead_letter_after/,
               'nginx -t: ldseg_dead_letter_after abc refused');

###############################################################################

# with a dead letter file: the poison is tried 3 times, then written out

my $dead = $t->testdir . '/dead.jsonl';
$t->write_file_expand('nginx.conf', conf("ldseg_dead_letter $dead;\n"
                                         . "    ldseg_dead_letter_after 3;"));

SKIP: {
    if (!eval { $t->run; 1 }) {
        diag("nginx with ldseg_dead_letter did not start: $@");
        fail('dead letter: nginx starts');
        skip 'nginx did not start', 16;
    }
    pass('dead letter: nginx starts');

    my @keys = map { "DL-$_" } 1 .. 20;
    my $ok = poison_first('DLID', 'poison-1');
    $ok &&= track('DLID', $_) == 200 for @keys;
    ok($ok, 'poison and 20 normal events accepted');

    Test::Ldseg::wait_for(sub { delivered_once('DLID', @keys) == 20 }, 20);
    is(delivered_once('DLID', @keys), 20,
       'the 20 normal events delivered once each');

    Test::Ldseg::wait_for(sub { -s $dead }, 20);
    my $s;
    Test::Ldseg::wait_for(sub { $s = $t->status;
                                $s && $s->{queue}{events} == 0 }, 10);
    sleep 2.5;      # more than the longest backoff: no 4th attempt

    my @p = poison_posts('DLID');
    is(join(' ', map { $_->{status} } @p), '400 400 400',
       'poison tried exactly 3 times');
    my %pid = map { ($_->{headers}{'x-launchdarkly-payload-id'} // '') => 1 }
              @p;
    is(scalar keys %pid, 1, 'poison: one payload ID throughout');

    my @lines = split /\n/, $t->read_file('dead.jsonl');
    is(scalar @lines, 1, 'dead letter file: one line');
    my $d = Test::Ldseg::json($lines[0] // '') || {};
    ok(ref $d eq 'HASH' && keys %$d, 'dead letter line is a JSON object')
        or diag($lines[0]);

    like($d->{payload_id} // '', $UUID, 'payload_id is a UUID');
    is($d->{payload_id} // '', (keys %pid)[0] // 'none',
       'payload_id is the X-LaunchDarkly-Payload-ID LaunchDarkly saw');
    is($d->{client_side_id}, 'DLID', 'client_side_id');
    ok(defined $d->{status} && Test::Ldseg::_is_number($d->{status})
       && $d->{status} == 400, 'status 400 (a number)');
    like($d->{time} // '',
         qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, 'time: ISO-8601 UTC');
    is(ref $d->{events} eq 'ARRAY'
           ? Test::Ldseg::canon_text(Test::Ldseg::canon($d->{events})) : '',
       @p ? Test::Ldseg::canon_text(Test::Ldseg::canon_json($p[-1]{body}))
          : 'no POST',
       'events: exactly what LaunchDarkly was sent');
    my @st = stat $dead;
    is(@st ? sprintf('%04o', $st[2] & 07777) : 'missing', '0600',
       'dead letter file mode 0600');

    is($s && $s->{dead_lettered}, 1, 'status: dead_lettered 1');
    is($s && $s->{queue}{events}, 0, 'status: poison no longer queued');
    my (undef, undef, $prom) = $t->http_get('/status?format=prometheus');
    like($prom, qr/^ldseg_dead_lettered_total 1$/m,
         'prometheus: ldseg_dead_lettered_total 1');
}

$t->stop;

###############################################################################

# without a dead letter file: the poison stays queued, behind newer
# payloads, and does not hold them up

$t->write_file_expand('nginx.conf', conf(''));
$t->run;

my @keys = map { "NQ-$_" } 1 .. 20;
my $ok = poison_first('NQID', 'poison-2');
$ok &&= track('NQID', $_) == 200 for @keys;
ok($ok, 'no dead letter: poison and 20 normal events accepted');

Test::Ldseg::wait_for(sub { delivered_once('NQID', @keys) == 20 }, 25);
is(delivered_once('NQID', @keys), 20,
   'no dead letter: the 20 normal events delivered anyway');

Test::Ldseg::wait_for(sub { poison_posts('NQID') >= 7 }, 20);
my @p = poison_posts('NQID');
cmp_ok(scalar @p, '>=', 7,
       'no dead letter: poison retried beyond the default 5 attempts');
is(scalar(grep { $_->{status} =~ /^2/ } @p), 0, 'poison never accepted');

my $s = $t->status;
is($s && $s->{queue}{events}, 1, 'no dead letter: the poison stays queued');
is($s && ($s->{dead_lettered} // -1) . '/' . $s->{dropped}, '0/0',
   'no dead letter: nothing dead-lettered or dropped');

###############################################################################
