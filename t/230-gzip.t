#!/usr/bin/perl

# ldseg_gzip: with "on" (the default) a POST body of more than ~600 bytes
# arrives with "Content-Encoding: gzip" and decodes to exactly the events;
# with "off" no POST is ever compressed.

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

# off

conf('ldseg_gzip off;');
ok($t->reload, 'reload with ldseg_gzip off');

my @k2 = map { "N-$_" } 1 .. 20;
send_batch('GZOFF', 100, @k2);
send_batch('GZOFF', 1000, 'N-big');
$mock->wait_events(21 + 21, 10);
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
