#!/usr/bin/perl

# A client-side ID from a variable is checked on every request (it goes
# into the events URL): a value that is not a plain token is answered 500
# with the JSON code invalid_client_side_id and nothing is queued; a literal
# ID, checked once at nginx -t, and a good variable value are accepted and
# delivered to their own URLs.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(7);
my $mock = $t->mock(default => { status => 202 });

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id $arg_id;
        }

        location /literal/v1/ {
            ldseg on;
            ldseg_client_side_id LITERAL-id_1;
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

sub track {
    my ($path, $key) = @_;
    return $t->http_post($path, $J->encode({
        userId => 'u', event => $key,
        timestamp => '2016-05-04T03:02:01.000Z' }));
}

my ($code, undef, $body) = track('/v1/track?id=a%2F..%2Fb', 'BAD-slash');
is($code, 500, 'an ID with "/" from a variable: 500');
is((Test::Ldseg::json($body // '') || {})->{code}, 'invalid_client_side_id',
   'code invalid_client_side_id') or diag($body);

($code) = track('/v1/track?id=' . ('x' x 300), 'BAD-long');
is($code, 500, 'a too long ID from a variable: 500');

($code) = track('/v1/track?id=GOOD-1', 'OK-var');
is($code, 200, 'a plain token from a variable: 200');

($code) = track('/literal/v1/track', 'OK-literal');
is($code, 200, 'a literal ID: 200');

is($mock->wait_events(2, 10), 2, 'two events delivered');
select undef, undef, undef, 0.3;

my %at = map { $_->{key} => $_->{client_id} // '' }
         map { my $p = $_; map { { key => $_->{key},
                                   client_id => $p->{client_id} } }
                           @{ $p->{events} || [] } }
         grep { $_->{status} =~ /^2/ } $mock->posts;
is(join(',', map { "$_=" . ($at{$_} // 'none') } sort keys %at),
   'OK-literal=LITERAL-id_1,OK-var=GOOD-1',
   'each to its own client-side ID, nothing of the refused ones');

###############################################################################
