#!/usr/bin/perl

# ldseg_deliver: a request's events POSTed to LaunchDarkly through nginx
# subrequests to a location that proxy_passes to an upstream with
# keepalive, the client answered when LaunchDarkly has answered: the
# request LaunchDarkly gets (method, path, headers, none of the client's),
# batches split into parallel subrequests, keepalive connections reused,
# 503 upstream_failed (and nothing lost on the retry) when LaunchDarkly
# fails, is down or hangs, a 413 split into halves, and halves again until
# a single message, whose events are dropped and counted, the body exactly
# what the queue sends for the same messages, ldseg_pass after acceptance,
# the status counters, $ldseg_result, and a client that goes away.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use IO::Socket::INET;
use JSON::PP;
use Time::HiRes qw(sleep);

###############################################################################

my $t = Test::Ldseg->new()->plan(62);
my $mock = $t->mock;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 4m;
    ldseg_events_url %%MOCK%%;
    ldseg_batch_size 100;
    ldseg_flush_interval 100ms;

    upstream ld {
        server 127.0.0.1:%%MOCK_PORT%%;
        keepalive 16;
    }

    upstream down {
        server 127.0.0.1:1;
    }

    log_format result '$uri $status $ldseg_result';
    log_format ld '$ldseg_events_path $status $upstream_status '
                  'connect=$upstream_connect_time';

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        access_log %%TESTDIR%%/result.log result;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id SUB-ID;
            ldseg_deliver /ld;
        }

        location /fail/v1/ {
            ldseg on;
            ldseg_client_side_id FAIL-ID;
            ldseg_deliver /ld;
        }

        location /split/v1/ {
            ldseg on;
            ldseg_client_side_id SPLIT-ID;
            ldseg_deliver /ld;
        }

        location /hang/v1/ {
            ldseg on;
            ldseg_client_side_id HANG-ID;
            ldseg_deliver /ld;
        }

        location /down/v1/ {
            ldseg on;
            ldseg_client_side_id DOWN-ID;
            ldseg_deliver /down;
        }

        location /pass/v1/ {
            ldseg on;
            ldseg_client_side_id PASS-ID;
            ldseg_deliver /ld;
            ldseg_pass @segment;
        }

        location /queue/v1/ {
            ldseg on;
            ldseg_client_side_id QUEUE-ID;
        }

        location /same/v1/ {
            ldseg on;
            ldseg_client_side_id SAME-ID;
            ldseg_deliver /ld;
        }

        location = /ld {
            internal;
            proxy_pass http://ld$ldseg_events_path;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 2s;

            log_subrequest on;
            access_log %%TESTDIR%%/ld.log ld;
        }

        location = /down {
            internal;
            proxy_pass http://down$ldseg_events_path;
        }

        location @segment {
            return 200 "passed on\n";
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
my $TS = '2019-08-07T06:05:04.003Z';

sub track {
    my ($i, %more) = @_;
    return { type => 'track', userId => "user-$i", event => "E-$i",
             timestamp => $TS, messageId => "m-$i",
             properties => { i => $i, pad => 'x' x 20 }, %more };
}

sub batch {
    my ($from, $to) = @_;
    return $J->encode({ batch => [ map { track($_) } $from .. $to ] });
}

sub posts_for {
    my ($id) = @_;
    return grep { $_->{client_id} eq $id } $mock->posts;
}

sub events_for {
    my ($id) = @_;
    return $mock->events(client_id => $id);
}

# one track: LaunchDarkly's request, none of the client's headers

my ($code, $h, $body) = $t->http_post('/v1/track', $J->encode(track(1)),
    Authorization => 'Basic ' . 'd3JpdGVLZXk6',
    Cookie => 'session=secret',
    'X-Client' => 'mine');
is($code, 200, 'track accepted once delivered');
is($body, '{"success":true}', 'Segment\'s answer');

my @p = posts_for('SUB-ID');
is(scalar(@p), 1, 'one POST, already made when the client has its answer');

my $ph = $p[0]{headers};
is($p[0]{method}, 'POST', 'method POST');
is($p[0]{target}, '/events/bulk/SUB-ID', 'path /events/bulk/<id>');
is($ph->{'content-type'}, 'application/json', 'Content-Type');
is($ph->{'x-launchdarkly-event-schema'}, '4', 'X-LaunchDarkly-Event-Schema');
like($ph->{'x-launchdarkly-payload-id'} // '',
     qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
     'X-LaunchDarkly-Payload-ID');
is($ph->{'user-agent'}, 'ldseg/0.1.0', 'User-Agent as the sender\'s');
ok(!exists $ph->{authorization} && !exists $ph->{cookie}
   && !exists $ph->{'x-client'},
   'no header of the client reaches LaunchDarkly');
is(length $p[0]{body}, $ph->{'content-length'} // -1, 'Content-Length');
is_deeply([ map { $_->{key} } @{ $p[0]{events} } ], ['E-1'], 'the event');

# keepalive: sequential requests reuse the upstream's connections

for my $i (2 .. 6) {
    $t->http_post('/v1/track', $J->encode(track($i)));
}

@p = posts_for('SUB-ID');
my %conns = map { $_->{conn} => 1 } @p;
is(scalar(@p), 6, 'six POSTs');
cmp_ok(scalar(keys %conns), '<', 6, 'keepalive: connections reused');

# 500 messages: five subrequests of 100 events, in parallel

($code) = $t->http_post('/v1/batch', batch(1000, 1499));
is($code, 200, 'batch of 500 accepted');

@p = grep { $_->{events}[0]{key} =~ /^E-1\d\d\d$/ } posts_for('SUB-ID');
is(scalar(@p), 5, 'five POSTs');
is(scalar(grep { @{ $_->{events} } != 100 } @p), 0, '100 events each');
my %seen;
$seen{ $_->{key} }++ for map { @{ $_->{events} } } @p;
is(scalar(grep { ($seen{"E-$_"} // 0) != 1 } 1000 .. 1499), 0,
   'every event once');
%conns = map { $_->{conn} => 1 } @p;
cmp_ok(scalar(keys %conns), '>=', 2,
       'subrequests in parallel (more than one connection at once)');
my %ids = map { $_->{headers}{'x-launchdarkly-payload-id'} => 1 } @p;
is(scalar(keys %ids), 5, 'a payload ID each');

# LaunchDarkly fails: 503 upstream_failed, then the retry gets through

$mock->script(default => { status => 202 },
              steps => [ { status => 503, path => 'FAIL-ID', times => 1 } ]);

($code, $h, $body) = $t->http_post('/fail/v1/batch', batch(2000, 2009));
is($code, 503, 'LaunchDarkly 503: the client gets 503');
is($h->{'retry-after'}, '5', 'with Retry-After');
like($body, qr/"code":"upstream_failed"/, 'code upstream_failed');

($code) = $t->http_post('/fail/v1/batch', batch(2000, 2009));
is($code, 200, 'the retry is accepted');
%seen = ();
$seen{ $_->{key} }++ for events_for('FAIL-ID');
is(join(',', grep { !$seen{"E-$_"} } 2000 .. 2009), '',
   'no event lost: LaunchDarkly accepted all of them');

# upstream down, upstream hanging (proxy_read_timeout)

($code, $h, $body) = $t->http_post('/down/v1/track', $J->encode(track(3000)));
is($code, 503, 'upstream down: 503');
like($body, qr/"code":"upstream_failed"/, 'upstream down: upstream_failed');

$mock->script(default => { status => 202 },
              steps => [ { hang => 1, path => 'HANG-ID', times => 1 } ]);

($code, $h, $body) = $t->http_post('/hang/v1/track', $J->encode(track(3001)),
                                   -timeout => 20);
is($code, 503, 'hanging upstream: 503 after proxy_read_timeout');

# 413: the payload is sent again in two halves

$mock->script(default => { status => 202 },
              steps => [ { status => 413, path => 'SPLIT-ID', times => 1 } ]);

($code) = $t->http_post('/split/v1/batch', batch(4000, 4009));
is($code, 200, '413 then halves accepted: 200');
@p = posts_for('SPLIT-ID');
is(join(',', map { $_->{status} . ':' . scalar(@{ $_->{events} }) } @p),
   '413:10,202:5,202:5', 'one 413 of 10 events, two halves of 5');
%seen = ();
$seen{ $_->{key} }++ for events_for('SPLIT-ID');
is(scalar(grep { ($seen{"E-$_"} // 0) != 1 } 4000 .. 4009), 0,
   'every event once');

$mock->script(default => { status => 202 },
              steps => [ { status => 413, path => 'SPLIT-ID', times => 3 } ]);

($code, $h, $body) = $t->http_post('/split/v1/batch', batch(4100, 4109));
is($code, 200, '413 for both halves too: split again, accepted');
@p = posts_for('SPLIT-ID');
is(join(',', sort map { $_->{status} . ':' . scalar(@{ $_->{events} }) }
             @p[3 .. $#p]),
   '202:2,202:2,202:3,202:3,413:10,413:5,413:5',
   'halves of 5 split into 2 and 3');
%seen = ();
$seen{ $_->{key} }++ for events_for('SPLIT-ID');
is(scalar(grep { ($seen{"E-$_"} // 0) != 1 } 4100 .. 4109), 0,
   'every event of the halves\' halves once');

# a single message LaunchDarkly finds too large: dropped and counted, as
# the queue drops it; the request goes on

my ($sc0, undef, $sb0) = $t->http_get('/status');
my $st0 = eval { $J->decode($sb0) } || {};

$mock->script(default => { status => 202 },
              steps => [ { status => 413, path => 'SPLIT-ID', times => 4 } ]);

($code) = $t->http_post('/split/v1/batch', batch(4200, 4201));
is($code, 200, 'two messages, each too large alone: 200');
($code) = $t->http_post('/split/v1/track', $J->encode(track(4202)));
is($code, 200, 'one message too large: 200');
@p = posts_for('SPLIT-ID');
is(join(',', sort map { $_->{status} . ':' . scalar(@{ $_->{events} }) }
             @p[10 .. $#p]),
   '413:1,413:1,413:1,413:2', 'halves down to single events, no more');
is(scalar(grep { $_->{key} =~ /^E-420[012]$/ } events_for('SPLIT-ID')), 0,
   'none of them delivered');

my ($sc1, undef, $sb1) = $t->http_get('/status');
my $st1 = eval { $J->decode($sb1) } || {};
is(($st1->{dropped_reasons}{too_large_for_launchdarkly} // 0)
   - ($st0->{dropped_reasons}{too_large_for_launchdarkly} // 0), 3,
   'counted as dropped, too_large_for_launchdarkly');
is(($st1->{dropped} // 0) - ($st0->{dropped} // 0), 3, 'and in dropped');

$mock->script(default => { status => 202 });

# the same messages through the queue and through subrequests

my $same = $J->encode({ batch => [ map { track($_) } 5000 .. 5249 ] });

($code) = $t->http_post('/queue/v1/batch', $same);
is($code, 200, 'queue mode accepted');
($code) = $t->http_post('/same/v1/batch', $same);
is($code, 200, 'subrequest mode accepted');
for (1 .. 100) {
    last if events_for('QUEUE-ID') >= 250;
    sleep 0.1;
}

# in parallel both ways: in the order of their bodies

my @q = sort { $a->{body} cmp $b->{body} } posts_for('QUEUE-ID');
my @s = sort { $a->{body} cmp $b->{body} } posts_for('SAME-ID');
is(scalar(@s), 3, 'three payloads of at most 100');
is_deeply([ map { $_->{body} } @s ], [ map { $_->{body} } @q ],
          'the bodies are byte for byte the queue\'s');
is_deeply([ map { $_->{gzip} } @s ], [ map { $_->{gzip} } @q ],
          'gzip as the queue does it');
is_deeply([ map { $_->{headers}{'content-length'} } @s ],
          [ map { $_->{headers}{'content-length'} } @q ],
          'the same bytes on the wire');

# ldseg_pass: after acceptance, the untouched request goes on

($code, $h, $body) = $t->http_post('/pass/v1/track', $J->encode(track(6000)));
is($code, 200, 'ldseg_pass: passed on');
is($body, "passed on\n", 'the passed location answers');
is(scalar(events_for('PASS-ID')), 1, 'ldseg_pass: the event delivered');

$mock->script(default => { status => 202 },
              steps => [ { status => 500, path => 'PASS-ID', times => 1 } ]);
($code, $h, $body) = $t->http_post('/pass/v1/track', $J->encode(track(6001)));
is($code, 503, 'ldseg_pass: not passed on when LaunchDarkly fails');
$mock->script(default => { status => 202 });

# a client that goes away while its subrequest is in flight

$mock->script(default => { status => 202 },
              steps => [ { delay => 1, path => 'HANG-ID', times => 1 } ]);

my $req = $J->encode(track(7000));
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                              PeerPort => $t->port(8080));
print $s "POST /hang/v1/track HTTP/1.1\r\nHost: x\r\n"
    . "Content-Type: application/json\r\n"
    . "Content-Length: " . length($req) . "\r\n\r\n$req";
sleep 0.3;
close $s;
sleep 1.5;

($code) = $t->http_post('/v1/track', $J->encode(track(7001)));
is($code, 200, 'the worker serves on after a client went away');

# the status: subrequests per client-side ID

my ($sc, $sh, $sb) = $t->http_get('/status');
my $st = eval { $J->decode($sb) } || {};
my %d = map { $_->{client_side_id} => $_ } @{ $st->{destinations} || [] };

is_deeply([ map { $d{'SPLIT-ID'}{$_} } qw(subrequests subrequests_accepted
                                            subrequests_failed) ],
          [ 14, 6, 8 ], 'SPLIT-ID: 14 subrequests, 6 accepted, 8 failed');
is($d{'SPLIT-ID'}{dropped}, 3, 'SPLIT-ID: 3 events dropped as too large');
is($d{'SUB-ID'}{subrequests_failed}, 0, 'SUB-ID: none failed');
is($d{'SAME-ID'}{events_url}, '/ld', 'the location in place of the URL');
is($d{'HANG-ID'}{subrequests_failed}, 2,
   'HANG-ID: the timeout and the request gone both failed');
cmp_ok($st->{subrequests}{sent}, '==',
       $st->{subrequests}{accepted} + $st->{subrequests}{failed},
       'totals: sent = accepted + failed');

my (undef, undef, $prom) = $t->http_get('/status?format=prometheus');
my $line = 'ldseg_destination_subrequests_failed_total{kind="launchdarkly",'
    . 'client_side_id="FAIL-ID",events_url="/ld"} 1';
ok((grep { $_ eq $line } split /\n/, $prom),
   'Prometheus: per destination');

# $ldseg_result

$t->stop;

my $log = $t->read_file('result.log');
like($log, qr{^/fail/v1/batch 503 upstream_failed$}m,
     '$ldseg_result upstream_failed');
like($log, qr{^/v1/track 200 accepted$}m, '$ldseg_result accepted');

# log_subrequest: a line per POST

my @ld = grep { m{^/events/bulk/SUB-ID } } split /\n/, $t->read_file('ld.log');
is(scalar(@ld), 12, 'a line per subrequest, with $ldseg_events_path');
is(scalar(grep { !/ 202 202 connect=/ } @ld), 0, 'status and $upstream_status');

###############################################################################
