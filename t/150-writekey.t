#!/usr/bin/perl

# $ldseg_write_key: the Segment write key, from HTTP Basic auth (the user) or
# from the body's "writeKey", used through a map to pick the client-side ID.
# Events for different client-side IDs never share a POST.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(17);
my $mock = $t->mock;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 500ms;

    map $ldseg_write_key $ld_id {
        default      DEFAULT-ID;
        key-alpha    ALPHA-ID;
        key-beta     BETA-ID;
    }

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id $ld_id;
            add_header X-Write-Key "[$ldseg_write_key]" always;
        }
    }
}
EOF

$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2024-05-06T07:08:09.010Z';
my $n = 0;
my %want;       # event key => client-side ID

sub send_track {
    my (%o) = @_;
    my $key = 'WK-' . $n++;
    my $msg = { userId => "u-$key", event => $key, timestamp => $TS };
    $msg->{writeKey} = $o{body_key} if defined $o{body_key};
    my @h;
    push @h, Authorization => Test::Ldseg::basic_auth($o{auth}, $o{pass})
        if defined $o{auth};
    push @h, 'Content-Type' => 'text/plain' if $o{plain};
    my $path = $o{plain} ? '/v1/t' : '/v1/track';
    my ($code, $h) = $t->http_post($path, $J->encode($msg), @h);
    $want{$key} = $o{id};
    return ($code, $h->{'x-write-key'} // '');
}

my ($code, $wk) = send_track(auth => 'key-alpha', id => 'ALPHA-ID');
is($code, 200, 'basic auth key accepted');
is($wk, '[key-alpha]', '$ldseg_write_key from basic auth');

($code, $wk) = send_track(auth => 'key-beta', pass => 'secret',
                          id => 'BETA-ID');
is($wk, '[key-beta]', 'basic auth with a password: the user is the key');

($code, $wk) = send_track(body_key => 'key-alpha', plain => 1,
                          id => 'ALPHA-ID');
is($code, 200, 'body writeKey accepted');
is($wk, '[key-alpha]', '$ldseg_write_key from the body');

($code, $wk) = send_track(id => 'DEFAULT-ID');
is($wk, '[]', 'no key: empty variable');

($code, $wk) = send_track(auth => 'key-gamma', id => 'DEFAULT-ID');
is($wk, '[key-gamma]', 'unknown key');

($code, $wk) = send_track(auth => 'key-alpha', body_key => 'key-beta',
                          id => 'ALPHA-ID');
is($wk, '[key-alpha]', 'basic auth wins over the body');

# a batch with a top-level writeKey, as analytics.js sends to /v1/b

my $batch = $J->encode({ writeKey => 'key-beta', batch => [ map {
    my $key = 'WK-' . $n++;
    $want{$key} = 'BETA-ID';
    { type => 'track', userId => "u-$key", event => $key, timestamp => $TS }
} 1 .. 3 ] });
my ($bcode, $bh) = $t->http_post('/v1/b', $batch, 'Content-Type' => 'text/plain');
is($bh->{'x-write-key'}, '[key-beta]', 'writeKey of a batch');

# interleave keys quickly so that the queue holds all IDs at once

for my $i (1 .. 6) {
    send_track(auth => 'key-alpha', id => 'ALPHA-ID');
    send_track(auth => 'key-beta', id => 'BETA-ID');
    send_track(id => 'DEFAULT-ID');
}

my $total = keys %want;
is($mock->wait_events($total, 15), $total, "$total events delivered");
select undef, undef, undef, 1;

my %got;
$got{ $_->{key} }++ for $mock->events;
is(join(',', grep { ($got{$_} // 0) != 1 } sort keys %want), '',
   'every event exactly once');
is(scalar(keys %got), $total, 'no other events');

my @mixed;
for my $p (grep { $_->{status} =~ /^2/ } $mock->posts) {
    my @wrong = grep { ($want{ $_->{key} } // '') ne $p->{client_id} }
                @{ $p->{events} || [] };
    push @mixed, "POST #$p->{seq} to $p->{client_id}: "
        . join(',', map { $_->{key} } @wrong) if @wrong;
}
is(join("\n", @mixed), '', 'each POST holds events of its client-side ID only');

for my $id (qw(ALPHA-ID BETA-ID DEFAULT-ID)) {
    my $w = grep { $_ eq $id } values %want;
    is(scalar($mock->events(client_id => $id)), $w, "$w events for $id");
}

is(join(',', sort { $a cmp $b } keys %{{ map { $_->{client_id} => 1 }
                                          $mock->posts }}),
   'ALPHA-ID,BETA-ID,DEFAULT-ID', 'POSTs went to the three IDs only');

###############################################################################
