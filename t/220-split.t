#!/usr/bin/perl

# 413 under volume: 2000 events queued at once with ldseg_batch_size 1000;
# the mock answers 413 to every POST holding more than 300 events (or more
# than N bytes).  Payloads are halved until they pass: every event arrives
# exactly once, each half is a new payload with a payload ID of its own, and
# the two halves of a refused payload hold exactly its events.  An event too
# big for LaunchDarkly on its own is dropped (counted), not retried forever.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;
use Time::HiRes qw(time sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(18);
my $mock = $t->mock;
$mock->script(default => { status => 202 }, max_events => 300);

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 16m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 300ms;
    ldseg_batch_size 1000;
    ldseg_max_payload 4m;
    ldseg_retry_max_delay 2s;

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

$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2020-03-04T05:06:07.008Z';

sub send_batch {
    my ($id, $pad, @keys) = @_;
    my ($code, undef, $body) = $t->http_post("/v1/batch?id=$id",
        $J->encode({ batch => [ map { {
            type => 'track', userId => "u-$_", event => $_, timestamp => $TS,
            properties => { $pad ? (pad => 'y' x $pad) : () } } } @keys ] }),
        -timeout => 20);
    diag("$code $body") if $code != 200;
    return $code;
}

sub pid_of { $_[0]{headers}{'x-launchdarkly-payload-id'} // '' }
sub keys_of { map { $_->{key} } @{ $_[0]{events} || [] } }

# every refused payload was split into two halves holding exactly its
# events, each with a new payload ID

sub check_split {
    my ($id) = @_;
    my @p = grep { $_->{client_id} eq $id } $mock->posts;
    my @bad;
    my %first_of;   # payload ID -> first POST carrying it
    for my $p (@p) { $first_of{ pid_of($p) } //= $p }

    for my $big (grep { $_->{status} eq '413' } @p) {
        my %in = map { $_ => 1 } keys_of($big);
        my $n = keys %in;
        # payloads (first copy per ID) with only events of $big, sent later
        my @kids = grep { $_->{seq} > $big->{seq}
                          && pid_of($_) ne pid_of($big)
                          && !grep({ !$in{$_} } keys_of($_)) }
                   map { $first_of{$_} } keys %first_of;
        my @half = grep { my $k = () = keys_of($_);
                          $k == int($n / 2) || $k == $n - int($n / 2) } @kids;
        my %u;
        $u{$_}++ for map { keys_of($_) } @half;
        my $ok = 0;
        for my $i (0 .. $#half) {
            for my $j ($i + 1 .. $#half) {
                my %c;
                $c{$_}++ for keys_of($half[$i]), keys_of($half[$j]);
                if (keys %c == $n && !grep({ $c{$_} != 1 } keys %c)
                    && !grep({ !$in{$_} } keys %c)
                    && pid_of($half[$i]) ne pid_of($half[$j]))
                {
                    $ok = 1;
                }
            }
        }
        push @bad, "$big->{seq}($n events)" unless $ok;
    }
    return (\@p, \@bad);
}

###############################################################################

# 2000 events, payloads of 1000; the mock takes at most 300 per POST

my @keys = map { "S-$_" } 1 .. 2000;
is(send_batch('SPLIT', 0, @keys), 200, '2000 events accepted in one batch');

my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => \@keys,
                                    match => qr/^S-/, timeout => 40);
diag(Test::Ldseg::figures('split', $r));

my ($posts, $bad) = check_split('SPLIT');
my @refused = grep { $_->{status} eq '413' } @$posts;
my @ok = grep { $_->{status} =~ /^2/ } @$posts;

is(scalar @{ $r->{missing} }, 0, 'every event delivered');
is($r->{duplicated}, 0, 'no event delivered twice');
is(join(',', @{ $r->{unacked} }), '', 'no unknown event');
cmp_ok(scalar @refused, '>=', 2, scalar(@refused) . ' POSTs refused with 413');
is(scalar(grep { @{ $_->{events} } > 300 } @ok), 0,
   'no accepted POST holds more than 300 events');
is(join(' ', @$bad), '', 'each refused payload split into two halves');

my %ids;
$ids{ pid_of($_) }++ for @$posts;
my %refused_id = map { pid_of($_) => 1 } @refused;
is(scalar(grep { $refused_id{ pid_of($_) } } @ok), 0,
   'halves do not reuse a refused payload ID');
is(scalar(grep { $ids{$_} > 1 } keys %ids), 0,
   'every payload ID used once (no retries needed)')
    or diag(join ' ', map { "$_->{seq}:$_->{status}:" . @{ $_->{events} } }
                      @$posts);
note('split: POSTs ' . join(' ', map { "$_->{status}:" . @{ $_->{events} } }
                                 sort { $a->{seq} <=> $b->{seq} } @$posts));

# the same by bytes: at most 30000 bytes per POST (uncompressed)

$mock->script(default => { status => 202 }, max_bytes => 30000);

my @bkeys = map { "B-$_" } 1 .. 1000;
is(send_batch('BYTES', 150, @bkeys), 200, '1000 events of ~250 bytes');
$r = Test::Ldseg::wait_delivered(mock => $mock, acked => \@bkeys,
                                 match => qr/^B-/, timeout => 40);
diag(Test::Ldseg::figures('split-bytes', $r));
($posts, $bad) = check_split('BYTES');
is(scalar @{ $r->{missing} }, 0, 'every event delivered');
is($r->{duplicated}, 0, 'no event delivered twice');
is(join(' ', @$bad), '', 'each refused payload split into two halves');
is(scalar(grep { $_->{status} =~ /^2/ && length $_->{body} > 30000 } @$posts),
   0, 'no accepted POST over 30000 bytes');

# one event LaunchDarkly refuses on its own: dropped and counted, not
# retried forever; the events around it arrive

$mock->script(default => { status => 202 }, max_bytes => 5000);
my $before = $t->status;
is(send_batch('HUGE', 0, 'H-1'), 200, 'small event');
is(send_batch('HUGE', 8000, 'H-big'), 200, 'event of 8000 bytes');
is(send_batch('HUGE', 0, 'H-2'), 200, 'small event');

$r = Test::Ldseg::wait_delivered(mock => $mock, acked => [ 'H-1', 'H-2' ],
                                 match => qr/^H-/, timeout => 20);
my $s;
Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && $s->{queue}{events} == 0 }, 20);
is(($s && $s->{dropped_reasons}{too_large_for_launchdarkly} // 0)
   - ($before->{dropped_reasons}{too_large_for_launchdarkly} // 0)
   . ' ' . scalar(@{ $r->{missing} }) . ' ' . ($s && $s->{queue}{events}),
   '1 0 0', 'oversized event dropped (counted), the others delivered, '
   . 'queue empty');

###############################################################################
