#!/usr/bin/perl

# A full queue: with LaunchDarkly down and a small zone, new messages get
# 503 with Retry-After and the JSON code "queue_full"; nothing accepted
# before is lost, and once LaunchDarkly is back the queue drains and
# messages are accepted again.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(12);
my $mock = $t->mock(default => { status => 503 });

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 64k;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id FULL;
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

my (@accepted, $full, $full_h, $full_body);
my $unexpected = '';

for my $i (1 .. 200) {
    my $key = "QF-$i";
    my ($code, $h, $body) = $t->http_post('/v1/track', $J->encode({
        userId => "u-$i", event => $key, timestamp => $TS,
        properties => { pad => 'p' x 2000 } }));
    if ($code == 200) {
        push @accepted, $key;
        next;
    }
    if ($code == 503) {
        ($full, $full_h, $full_body) = ($code, $h, $body);
        last;
    }
    $unexpected = "$code $body";
    last;
}

is($unexpected, '', 'only 200 until the queue is full');
cmp_ok(scalar @accepted, '>', 0, scalar(@accepted) . ' messages fit');
is($full, 503, 'full queue: 503');
like($full_h->{'retry-after'} // '', qr/^\d+$/, 'full queue: Retry-After');
my $j = Test::Ldseg::json($full_body // '') || {};
ok(JSON::PP::is_bool($j->{success}) && !$j->{success}
   && ($j->{code} // '') eq 'queue_full' && length($j->{message} // ''),
   'full queue: JSON code queue_full') or diag($full_body);

my $s = $t->status;
cmp_ok($s && $s->{rejected_reasons}{queue_full} // 0, '>=', 1,
       'status counts queue_full');
is($s && $s->{queue}{events}, scalar @accepted,
   'every accepted message is queued');

# LaunchDarkly back: everything accepted is delivered, once

$mock->script();
my $n = @accepted;
is($mock->wait_events($n, 30), $n, "$n events delivered");
select undef, undef, undef, 0.5;
my %got;
$got{ $_->{key} }++ for $mock->events;
is(join(',', grep { ($got{$_} // 0) != 1 } @accepted), '',
   'each accepted event delivered once');
is(scalar(keys %got), $n, 'no event of a refused message');

Test::Ldseg::wait_for(sub { my $x = $t->status;
                            $x && $x->{queue}{events} == 0 }, 10);
my ($code) = $t->http_post('/v1/track', $J->encode({
    userId => 'u', event => 'QF-after', timestamp => $TS }));
is($code, 200, 'accepted again once drained');
is($mock->wait_events($n + 1, 10), $n + 1, 'and delivered');

###############################################################################
