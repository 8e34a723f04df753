#!/usr/bin/perl

# ldseg_max_payload is never exceeded: events that arrive in separate
# requests fill an open payload up to the limit, and the event that would
# cross it starts a new payload.  Every POST body (uncompressed JSON, the
# brackets and commas included) is at most ldseg_max_payload bytes, and every
# event is delivered once.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(10);
my $mock = $t->mock;

# the smallest ldseg_max_payload nginx accepts: LDSEG_MAX_MESSAGE, 32 KB

my $MAX = 32 * 1024;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 4m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 3s;
    ldseg_batch_size 1000;
    ldseg_max_payload 32k;

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
my $TS = '2023-04-05T06:07:08.009Z';

# keys of one width, so that the size of an event is (overhead + pad)

sub msg {
    my ($key, $pad) = @_;
    return { type => 'track', userId => 'u', event => $key, timestamp => $TS,
             properties => { pad => 'x' x $pad } };
}

my %sent;

sub post {
    my ($id, @ev) = @_;     # @ev: [key, event length], ...
    my $body = @ev == 1 ? msg($ev[0][0], $ev[0][1])
                        : { batch => [ map { msg($_->[0], $_->[1]) } @ev ] };
    my ($code, undef, $b) = $t->http_post(
        @ev == 1 ? "/v1/track?id=$id" : "/v1/batch?id=$id", $J->encode($body));
    diag("$id: $code $b") if $code != 200;
    $sent{ $_->[0] } = $id for @ev;
    return $code;
}

# calibration: the size of an event without its pad

post('CAL', [ 'K00-00', 100 ]);
my $n = $mock->wait_events(1, 10);
my ($cal) = $mock->posts;
my $over = $cal ? length($cal->{body}) - 2 - 100 : 0;
ok($n == 1 && $over > 0, "calibration: an event is pad + $over bytes");

# event of $len bytes (as LaunchDarkly sees it)

sub ev {
    my ($key, $len) = @_;
    return [ $key, $len - $over ];
}

# a POST body of events L1..Ln is 2 + sum(L) + (n - 1) bytes

my %case = (
    # 20000 + 15000: far over
    A => [ [ ev('K01-01', 20000) ], [ ev('K01-02', 15000) ] ],
    # one byte over: 2 + 16000 + 1 + 16766 = 32769
    B => [ [ ev('K02-01', 16000) ], [ ev('K02-02', 16766) ] ],
    # exactly the limit: 2 + 16000 + 1 + 16765 = 32768
    C => [ [ ev('K03-01', 16000) ], [ ev('K03-02', 16765) ] ],
    # ten of 3200 (32011), then one of 800
    D => [ (map { [ ev(sprintf('K04-%02d', $_), 3200) ] } 1 .. 10),
           [ ev('K04-11', 800) ] ],
    # a batch whose first event still fits, then two that do not
    E => [ [ ev('K05-01', 10000) ],
           [ ev('K05-02', 10000), ev('K05-03', 10000), ev('K05-04', 5000) ] ],
    # nearly full, then a small one
    F => [ [ ev('K06-01', 30000) ], [ ev('K06-02', 3000) ] ],
);

# the requests of each case follow each other closely, within one flush
# interval: they meet the same open payload

my $ok = 1;
for my $c (sort keys %case) {
    for my $req (@{ $case{$c} }) {
        $ok &&= post("ID$c", @$req) == 200;
    }
}
ok($ok, 'every request accepted');

my @keys = grep { $_ ne 'K00-00' } keys %sent;
my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => \@keys,
                                    match => qr/^K0[1-9]/, timeout => 20);
is(scalar @{ $r->{missing} }, 0, 'every event delivered');
is($r->{duplicated}, 0, 'none twice');

my @p = $mock->posts;
for my $c (sort keys %case) {
    my @over = grep { $_->{client_id} eq "ID$c" && length $_->{body} > $MAX }
               @p;
    is(join(' ', map { length($_->{body}) . ' bytes, '
                       . scalar(@{ $_->{events} || [] }) . ' events' } @over),
       '', "case $c: no POST body over $MAX bytes");
}

note(join ' ', map { "$_->{client_id}:" . length($_->{body}) } @p);

###############################################################################
