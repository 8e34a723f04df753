#!/usr/bin/perl

# Delivery to LaunchDarkly: the exact request (method, path, headers, JSON
# array body), batching by ldseg_batch_size (a full batch goes out at once,
# a partial one waits for ldseg_flush_interval), distinct payload IDs.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;
use Time::HiRes qw(time);

###############################################################################

my $t = Test::Ldseg->new()->plan(19);
my $mock = $t->mock;

# a long flush interval: a full batch must not wait for it, a partial one
# must

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 12s;
    ldseg_batch_size 10;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id DELIVERY-ID;
        }
    }
}
EOF

$t->run;
my $started = time;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2019-08-07T06:05:04.003Z';
my $MS = 1565157904003;

# 5 single tracks: fewer than ldseg_batch_size, they wait for the timer

my $all = 1;
for my $i (0 .. 4) {
    my ($code) = $t->http_post('/v1/track', $J->encode({
        userId => "user-$i", event => "D-$i", timestamp => $TS,
        properties => { i => $i } }));
    $all = 0 if $code != 200;
}
ok($all, '5 tracks accepted');

select undef, undef, undef, 1.5;

# this only means something if the 12 s flush timer cannot have fired yet

SKIP: {
    skip 'too slow to tell early from timed flushes', 1
        if time - $started > 10;
    is(scalar($mock->posts), 0, 'a partial batch waits for the interval');
}

# 30 more in one batch: full batches go out without waiting for the timer

my ($code) = $t->http_post('/v1/batch', $J->encode({ batch => [ map {
    { type => 'track', userId => "user-$_", event => "D-$_",
      timestamp => $TS, properties => { i => $_ } }
} 5 .. 34 ] }));
is($code, 200, 'batch of 30 accepted');

SKIP: {
    skip 'too slow to tell early from timed flushes', 1
        if time - $started > 6;
    cmp_ok($mock->wait_events(30, 5), '>=', 30, 'full batches sent early');
}

is($mock->wait_events(35, 20), 35, 'every event sent');
select undef, undef, undef, 0.5;

my @posts = $mock->posts;
is(scalar(grep { @{ $_->{events} || [] } > 10 } @posts), 0,
   'no POST with more than 10 events');
cmp_ok(scalar(@posts), '>=', 4, 'at least four POSTs');

my %seen;
$seen{ $_->{data}{i} }++ for $mock->events;
is(join(',', grep { ($seen{$_} // 0) != 1 } 0 .. 34), '',
   'each event exactly once');

# the exact request

my %bad;
my %ids;
for my $p (@posts) {
    my $h = $p->{headers};
    $bad{method}++ if $p->{method} ne 'POST';
    $bad{path}++ if $p->{target} ne '/events/bulk/DELIVERY-ID';
    $bad{ctype}++ if ($h->{'content-type'} // '') ne 'application/json';
    $bad{schema}++ if ($h->{'x-launchdarkly-event-schema'} // '') ne '4';
    $bad{ua}++ if ($h->{'user-agent'} // '') ne 'ldseg/0.1.0';
    $bad{uuid}++ if ($h->{'x-launchdarkly-payload-id'} // '') !~
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    $ids{ $h->{'x-launchdarkly-payload-id'} // '' }++;
    $bad{array}++ unless $p->{body} =~ /^\s*\[/ && ref $p->{events} eq 'ARRAY';
    $bad{length}++ if !$p->{chunked} && !$p->{gzip}
        && ($h->{'content-length'} // -1) != length $p->{body};
    $bad{authorization}++ if exists $h->{authorization};
}

for my $k (qw(method path ctype schema ua uuid array length)) {
    is($bad{$k} // 0, 0, "every POST: $k");
}
is(scalar(keys %ids), scalar(@posts), 'payload IDs are distinct');

my ($e) = grep { $_->{key} eq 'D-7' } $mock->events;
is_deeply($e, { kind => 'custom', key => 'D-7', creationDate => $MS,
                contextKeys => { user => 'user-7' }, data => { i => 7 } },
          'event content');

my ($p) = grep { grep { $_->{key} eq 'D-7' } @{ $_->{events} } } @posts;
my $decoded = Test::Ldseg::json($p->{body});
ok(ref $decoded eq 'ARRAY' && !grep({ ref $_ ne 'HASH' } @$decoded),
   'body is an array of objects');

###############################################################################
