#!/usr/bin/perl

# A client-side ID that LaunchDarkly refuses (401): one error naming it is
# logged, its events are kept, but only up to an eighth of the zone; beyond
# that its clients get 503 while another client-side ID goes on normally.
# Once LaunchDarkly accepts the ID again, every event it got 200 for
# arrives.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(12);
my $mock = $t->mock(steps => [
    { path => '/events/bulk/BADID', status => 401, times => 1000000 } ]);

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 128k;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_retry_max_delay 2s;

    map $http_x_id $ld_id {
        default GOODID;
        bad     BADID;
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

$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2016-05-04T03:02:01.000Z';

sub track {
    my ($key, @h) = @_;
    my ($code, $h) = $t->http_post('/v1/track', $J->encode({
        userId => "u-$key", event => $key, timestamp => $TS,
        properties => { pad => 'p' x 500 } }), @h);
    return ($code, $h);
}

# the first POST for BADID gets its 401

my ($code) = track('BAD-0', 'X-Id' => 'bad');
is($code, 200, 'refused ID: first message accepted');
ok(Test::Ldseg::wait_for(sub {
       grep { ($_->{client_id} // '') eq 'BADID' } $mock->requests }, 10),
   'refused ID: LaunchDarkly answered 401');

my @bad = ('BAD-0');
my ($refused, $retry_after, $other) = (0, undef, '');

for my $i (1 .. 400) {
    my ($c, $h) = track("BAD-$i", 'X-Id' => 'bad');
    if ($c == 200) {
        push @bad, "BAD-$i";
    } elsif ($c == 503) {
        $refused++;
        $retry_after //= $h->{'retry-after'};
        last if $refused >= 5;
    } else {
        $other = $c;
        last;
    }
}

is($other, '', 'refused ID: only 200 and 503');
cmp_ok($refused, '>=', 1, "refused ID: 503 after " . @bad . " messages");
like($retry_after // '', qr/^\d+$/, 'refused ID: 503 has Retry-After');

my $s = $t->status;
cmp_ok($s->{queue}{bytes}, '<=', 128 * 1024 / 8,
       "refused ID holds at most an eighth of the zone ($s->{queue}{bytes})");

# another client-side ID is not affected

my @good;
for my $i (1 .. 20) {
    my ($c) = track("GOOD-$i");
    push @good, "GOOD-$i" if $c == 200;
}
is(scalar @good, 20, 'other ID: every message accepted');
is(scalar(grep { $_->{key} =~ /^GOOD-/ }
          $mock->wait_events(20, 10) && $mock->events(client_id => 'GOODID')),
   20, 'other ID: delivered');

# LaunchDarkly accepts the ID again: everything acknowledged arrives

$mock->script();
my $n = @bad;
ok(Test::Ldseg::wait_for(sub {
       scalar($mock->events(client_id => 'BADID')) >= $n }, 20),
   "refused ID: all $n acknowledged events delivered after recovery");
my %got;
$got{ $_->{key} }++ for $mock->events(client_id => 'BADID');
is(join(',', grep { !$got{$_} } @bad), '', 'refused ID: none missing');

my $log = $t->read_file('error.log');
my @lines = $log =~ /(answered 401 for client-side ID "BADID")/g;
is(scalar @lines, 1, 'one error line naming the refused ID');
is($t->status->{dropped}, 0, 'nothing dropped');

###############################################################################
