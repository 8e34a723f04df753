#!/usr/bin/perl

# ldseg_recent N: the last N translated events in a ring in the zone, with
# payload ID, client-side ID, time queued, time and outcome of delivery,
# as JSON at "<status>?recent=1", newest first; bounded (N entries, events
# cut to a fixed size); off by default and after a reload that removes it.

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

my $conf = <<'EOF';
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    %%RECENT%%

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /ok/ {
            ldseg on;
            ldseg_client_side_id OK-ID;
        }

        location /down/ {
            ldseg on;
            ldseg_client_side_id DOWN-ID;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

(my $c = $conf) =~ s/%%RECENT%%/ldseg_recent 5;/;
$t->write_file_expand('nginx.conf', $c);

$mock->script(default => { status => 202 }, steps => [
    { status => 503, path => 'DOWN-ID', times => 1000000 },
]);

$t->run;

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2024-02-29T12:00:00Z';

sub track {
    my ($where, $event, %props) = @_;
    return ($t->http_post("/$where/v1/track",
        $J->encode({ userId => 'u', event => $event, timestamp => $TS,
                     %props ? (properties => \%props) : () })))[0];
}

sub recent {
    my ($code, undef, $body) = $t->http_get('/status?recent=1');
    return $code == 200 ? Test::Ldseg::json($body) : undef;
}

my $before = time;

track('ok', "OK-$_") for 1 .. 4;
track('down', 'DOWN-1');
track('ok', 'OK-5');
track('ok', 'OK-BIG', blob => 'x' x 2000);

is($mock->wait_events(6, 10), 6, 'the OK-ID events delivered');
ok(Test::Ldseg::wait_for(sub {
       my $r = recent() or return 0;
       my %o = map { $_->{event}{key} // 'big' => $_->{outcome} }
               grep { ref $_->{event} } @{ $r->{recent} };
       !grep({ $_ eq 'queued' } values %o) && ($o{'DOWN-1'} // '') eq 'retrying'
   }, 10), 'outcomes known');

my $r = recent() || {};
my @e = @{ $r->{recent} || [] };

is($r->{size}, 5, 'size 5');
is($r->{total}, 7, 'total 7 events recorded');
is(scalar @e, 5, 'five entries kept');

my @keys = map { ref $_->{event} ? $_->{event}{key} : 'cut' } @e;
is("@keys", 'cut OK-5 DOWN-1 OK-4 OK-3', 'newest first, oldest dropped');

ok($e[0]{event_truncated} && !ref $e[0]{event}
   && length($e[0]{event}) <= 448, 'a large event is cut, as a string');

my %by = map { ref $_->{event} ? ($_->{event}{key} => $_) : () } @e;

# OK-4 went in a POST LaunchDarkly took: its payload ID is that POST's

my ($post) = grep { grep { ($_->{key} // '') eq 'OK-4' }
                    @{ $_->{events} || [] } }
             grep { $_->{status} =~ /^2/ } $mock->posts;
is($by{'OK-4'}{payload_id},
   $post && $post->{headers}{'x-launchdarkly-payload-id'},
   'OK-4: the payload ID of its POST');
is($by{'OK-4'}{outcome} . ' ' . $by{'OK-4'}{status}, 'delivered 202',
   'OK-4: delivered, 202');
is($by{'OK-4'}{client_side_id}, 'OK-ID', 'OK-4: client-side ID');

like($by{'DOWN-1'}{payload_id} // '', qr/^[0-9a-f-]{36}$/,
     'DOWN-1: has a payload ID');
is($by{'DOWN-1'}{outcome} . ' ' . $by{'DOWN-1'}{status}, 'retrying 503',
   'DOWN-1: retrying after 503');

my ($q, $a) = map { /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.\d{3}Z$/
                    ? 1 : 0 } $by{'OK-4'}{queued}, $by{'OK-4'}{answered};
ok($q && $a && $by{'OK-4'}{answered} ge $by{'OK-4'}{queued},
   'queued and answered times, answered after queued');
is($by{'OK-4'}{attempts}, 1, 'OK-4: one attempt');

# the status without ?recent=1 does not show them

unlike(($t->http_get('/status'))[2], qr/"recent"/,
       'the plain status has no recent events');

# reloaded without ldseg_recent: nothing kept

($c = $conf) =~ s/%%RECENT%%//;
$t->write_file_expand('nginx.conf', $c);
ok($t->reload, 'reload without ldseg_recent');
$r = recent() || {};
is(scalar @{ $r->{recent} || [1] } . '/' . ($r->{size} // 'undef'), '0/0',
   'off: no recent events');

###############################################################################
