#!/usr/bin/perl

# ldseg_gzip: with "on" (the default) a POST body of more than ~600 bytes
# arrives with "Content-Encoding: gzip" and decodes to exactly the events,
# with static Huffman codes at first and, once the worker has compressed
# 256 KB, with codes learned from it (smaller bodies); with "off" no POST
# is ever compressed.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(14);
my $mock = $t->mock;

my $conf = <<'EOF';
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 50;
    %%GZIP%%

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id $arg_id;
        }
    }
}
EOF

sub conf {
    my ($gzip) = @_;
    (my $c = $conf) =~ s/%%GZIP%%/$gzip/;
    $t->write_file_expand('nginx.conf', $c);
}

conf('');
$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2021-04-05T06:07:08.009Z';

sub send_batch {
    my ($id, $pad, @keys) = @_;
    my ($code) = $t->http_post("/v1/batch?id=$id", $J->encode({ batch => [
        map { { type => 'track', userId => "u-$_", event => $_,
                timestamp => $TS, properties => { pad => 'z' x $pad } } }
        @keys ] }));
    return $code;
}

sub posts_for {
    my ($id) = @_;
    return grep { $_->{client_id} eq $id } $mock->posts;
}

# default (on): one big payload, several sizes

my @k = map { "G-$_" } 1 .. 20;
is(send_batch('GZON', 1, 'G-small'), 200, 'one small event');
$mock->wait_events(1, 10);
is(send_batch('GZON', 100, @k), 200, '20 events of ~200 bytes');
$mock->wait_events(21, 10);
my @p = posts_for('GZON');
my @big = grep { length $_->{body} > 600 } @p;
cmp_ok(scalar @big, '>=', 1, 'a POST over 600 bytes');
is(scalar(grep { !$_->{gzip}
                 || ($_->{headers}{'content-encoding'} // '') ne 'gzip' }
          @big), 0, 'POSTs over 600 bytes are gzip-compressed');
is(scalar(grep { $_->{gzip_error} } @p), 0, 'and decompress cleanly');
my %got;
$got{ $_->{key} }++ for map { @{ $_->{events} || [] } } @p;
is(join(',', map { $got{$_} // 0 } @k, 'G-small'), join(',', (1) x 21),
   'the decompressed bodies hold exactly the events');
my $e = (grep { $_->{key} eq 'G-1' } map { @{ $_->{events} || [] } } @p)[0];
is($e && $e->{data}{pad}, 'z' x 100, 'event data intact after gzip');

# many varied events: after its first 256 KB a worker compresses with
# codes learned from what it sent (dynamic Huffman blocks), which must
# decode as well and make smaller bodies of the same kind of events

srand(7);
my @d = map { "D-$_" } 1 .. 1000;
my %pad = map { $_ => join('', map { sprintf '%08x', int rand 2**32 } 1 .. 25)
                      . ' checkout ' . int(rand 1e6) } @d;
for my $i (0 .. 19) {
    my @keys = @d[$i * 50 .. $i * 50 + 49];
    my ($code) = $t->http_post("/v1/batch?id=GZDYN", $J->encode({ batch => [
        map { { type => 'track', userId => "u-$_", event => $_,
                timestamp => $TS, properties => { pad => $pad{$_} } } }
        @keys ] }));
    $code == 200 or last;
    $mock->wait_events(21 + 50 * ($i + 1), 10);
}
@p = posts_for('GZDYN');
my %got3;
for my $e (map { @{ $_->{events} || [] } } @p) {
    $got3{ $e->{key} }++ if ($e->{data}{pad} // '') eq $pad{ $e->{key} };
}
is(scalar(grep { ($got3{$_} // 0) == 1 } @d), 1000,
   '1000 varied events: each delivered once, intact');
is(scalar(grep { $_->{gzip_error} || !$_->{gzip} } @p), 0,
   'every POST gzip-compressed and decompressed cleanly');
my @static = grep { ($_->{gzip_btype} // -1) == 1 } @p;
my @dynamic = grep { ($_->{gzip_btype} // -1) == 2 } @p;
ok(@static && @dynamic, 'static codes first, then dynamic ones');
my $ratio = sub {
    my $w = 0; my $b = 0;
    for (@_) { $w += $_->{wire_length}; $b += length $_->{body}; }
    return $b ? $w / $b : 1;
};
cmp_ok($ratio->(@dynamic), '<', $ratio->(@static) * 0.9,
       'the dynamic blocks make smaller bodies');
diag(sprintf 'gzip: %d POSTs of varied events, %d static (%.1f%%), '
     . '%d dynamic (%.1f%%)', scalar @p, scalar @static,
     100 * $ratio->(@static), scalar @dynamic, 100 * $ratio->(@dynamic));

# off

conf('ldseg_gzip off;');
ok($t->reload, 'reload with ldseg_gzip off');

my @k2 = map { "N-$_" } 1 .. 20;
send_batch('GZOFF', 100, @k2);
send_batch('GZOFF', 1000, 'N-big');
$mock->wait_events(1021 + 21, 10);
@p = posts_for('GZOFF');
my %got2;
$got2{ $_->{key} }++ for map { @{ $_->{events} || [] } } @p;
is(scalar(keys %got2), 21, 'every event delivered');
is(scalar(grep { $_->{gzip} || exists $_->{headers}{'content-encoding'} }
          @p), 0, 'ldseg_gzip off: no POST compressed');

diag(sprintf 'gzip: %d POSTs with gzip on (%d over 600 bytes, all gzip; '
     . 'sizes/gzip %s), %d with gzip off (none gzip)',
     scalar(posts_for('GZON')), scalar @big,
     join(' ', map { length($_->{body}) . '/' . $_->{gzip} }
               posts_for('GZON')), scalar @p);

###############################################################################
