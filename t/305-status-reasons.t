#!/usr/bin/perl

# ldseg_status: every refusal is counted under its own reason, in the JSON
# document and in Prometheus, never under a catch-all: a body in an
# unsupported Content-Encoding ("invalid_encoding") and a write key with
# no client-side ID ("unknown_write_key") among them.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(16);

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;

    map $ldseg_write_key $ld_id {
        default      "";
        key-known    KNOWN-ID;
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
my $TS = '2024-02-29T12:00:00Z';
my $track = $J->encode({ userId => 'u', event => 'R', timestamp => $TS });
my $known = Test::Ldseg::basic_auth('key-known');

my ($code, undef, $body) = $t->http_post('/v1/track', $track,
                                         Authorization => $known,
                                         'Content-Encoding' => 'br');
is($code, 400, 'Content-Encoding br: 400');
is(eval { $J->decode($body)->{code} } // '', 'invalid_encoding',
   'Content-Encoding br: code invalid_encoding');

for (1 .. 2) {
    ($code, undef, $body) = $t->http_post('/v1/track', $track,
        Authorization => Test::Ldseg::basic_auth('key-unknown'));
}
is($code, 401, 'unknown write key: 401');
is(eval { $J->decode($body)->{code} } // '', 'unknown_write_key',
   'unknown write key: code unknown_write_key');

($code) = $t->http_post('/v1/track', $track, Authorization => $known);
is($code, 200, 'known write key: 200');

# JSON

my $s = $t->status || {};
my %reasons = %{ $s->{rejected_reasons} || {} };
my %nonzero = map { $_ => $reasons{$_} } grep { $reasons{$_} } keys %reasons;

is_deeply(\%nonzero, { invalid_encoding => 1, unknown_write_key => 2 },
          'rejected_reasons: each refusal under its own reason');
ok(!exists $reasons{other}, 'no catch-all "other" reason');
is($s->{rejected}, 3, 'rejected 3');
is($s->{received}, 4, 'received 4');
my $sum = 0;
$sum += $_ for values %reasons;
is($sum, $s->{rejected}, 'reasons add up to rejected');

# Prometheus: one sample per reason of the JSON document, the same values

my ($pcode, undef, $prom) = $t->http_get('/status?format=prometheus');
is($pcode, 200, 'prometheus: 200');

my %sample;
for my $line (split /\n/, $prom) {
    $sample{$1} = $2
        if $line =~ /^ldseg_rejected_total\{reason="([a-z_]+)"\} (\d+)$/;
}

is($sample{invalid_encoding}, 1, 'prometheus: invalid_encoding 1');
is($sample{unknown_write_key}, 2, 'prometheus: unknown_write_key 2');
is(join(',', sort keys %sample), join(',', sort keys %reasons),
   'prometheus: the reasons of the JSON document');
is(join(',', grep { $sample{$_} != $reasons{$_} } sort keys %sample), '',
   'prometheus: the values of the JSON document');

# a method the status does not accept gets a JSON answer too

($code, my $h, $body) = $t->http_post('/status', '{}');
ok($code == 405 && ($h->{allow} // '') eq 'GET, HEAD'
   && (eval { $J->decode($body)->{code} } // '') eq 'method_not_allowed',
   'POST to status: JSON 405 with Allow');

###############################################################################
