#!/usr/bin/perl

# ldseg_status: the JSON document (parsed with JSON::PP; every counter an
# integer; counters add up and match what was sent; the same from every
# worker) and the Prometheus text format, checked line by line.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(49);
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
    ldseg_flush_interval 100ms;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id STATUS;
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

my @COUNTERS = qw(received accepted rejected skipped translated queued
                  delivered failed dropped);

sub status {
    my ($code, $h, $body) = $t->http_get('/status');
    return ($code, $h, $body, Test::Ldseg::json($body));
}

sub is_int {
    my ($v) = @_;
    return defined $v && !ref $v && Test::Ldseg::_is_number($v)
           && $v =~ /^\d+$/;
}

# fresh

my ($code, $h, $body, $s) = status();
is($code, 200, 'status 200');
like($h->{'content-type'} // '', qr{^application/json}, 'content type');
ok(ref $s eq 'HASH', 'status is a JSON object') or diag($body);
$s ||= {};

is(join(',', grep { !is_int($s->{$_}) } @COUNTERS), '',
   'every counter is an integer');
is(join(',', grep { $s->{$_} } @COUNTERS), '', 'all counters start at 0');
ok(ref $s->{rejected_reasons} eq 'HASH', 'rejected_reasons object');
ok(ref $s->{queue} eq 'HASH'
   && !grep({ !is_int($s->{queue}{$_}) } qw(events bytes size)),
   'queue object with events, bytes, size');
cmp_ok($s->{queue}{size} // 0, '>', 0, 'queue size');
ok(ref $s->{posts} eq 'HASH'
   && !grep({ !is_int($s->{posts}{$_}) } qw(sent succeeded failed in_flight)),
   'posts object with sent, succeeded, failed, in_flight');
ok(defined $s->{version} && !ref $s->{version}
   && $s->{version} =~ /^\d+\.\d+\.\d+$/, 'version');

# traffic with a known outcome
#   3 tracks                          received 3, accepted 3
#   batch: 4 tracks, 1 page, 1 track without event, 1 with array properties
#                                     received 7, accepted 5 (1 skipped),
#                                     rejected 2
#   1 track without event             received 1, rejected 1
#   1 body that is not JSON           received 1, rejected 1
#   1 identify without anonymous id   received 1, accepted 1, skipped 1
# => received 13, accepted 9, rejected 4, skipped 2, translated 7

for my $i (1 .. 3) {
    $t->http_post('/v1/track', $J->encode({ userId => 'u', event => "S-$i",
                                            timestamp => $TS }));
}
$t->http_post('/v1/batch', $J->encode({ batch => [
    (map { { type => 'track', userId => 'u', event => "SB-$_",
             timestamp => $TS } } 1 .. 4),
    { type => 'page', userId => 'u', name => 'Home' },
    { type => 'track', userId => 'u' },
    { type => 'track', userId => 'u', event => 'SB-bad', properties => [] },
] }));
$t->http_post('/v1/track', $J->encode({ userId => 'u' }));
$t->http_post('/v1/track', 'not json');
$t->http_post('/v1/identify', $J->encode({ userId => 'u' }));

is($mock->wait_events(7, 10), 7, 'seven events delivered');
Test::Ldseg::wait_for(sub { my (undef, undef, undef, $x) = status();
                            $x && $x->{delivered} == 7
                            && $x->{posts}{in_flight} == 0 }, 5);

($code, $h, $body, $s) = status();
$s ||= {};

my %want = (received => 13, accepted => 9, rejected => 4, skipped => 2,
            translated => 7, queued => 7, delivered => 7, failed => 0,
            dropped => 0);
for my $k (@COUNTERS) {
    is($s->{$k}, $want{$k}, "$k = $want{$k}");
}
is($s->{received}, $s->{accepted} + $s->{rejected},
   'received = accepted + rejected');

my %reasons = %{ $s->{rejected_reasons} || {} };
my %nonzero = map { $_ => $reasons{$_} } grep { $reasons{$_} } keys %reasons;
is_deeply(\%nonzero, { missing_event => 2, invalid_properties => 1,
                       invalid_json => 1 }, 'rejected_reasons');
my $sum = 0;
$sum += $_ for values %reasons;
is($sum, $s->{rejected}, 'reasons add up to rejected');

is($s->{queue}{events}, 0, 'queue empty');
is($s->{queue}{bytes}, 0, 'queue bytes 0');
my $posts = scalar $mock->posts;
is($s->{posts}{sent}, $posts, 'posts sent = POSTs LaunchDarkly saw');
is($s->{posts}{succeeded}, $posts, 'posts succeeded');
is($s->{posts}{failed}, 0, 'posts failed');

# the counters live in the zone: every worker shows the same (once the
# idle destination is freed, nothing changes by itself any more)

Test::Ldseg::wait_for(sub { my $x = $t->status;
                            $x && $x->{queue}{destinations} == 0 }, 5);

my %bodies;
for (1 .. 8) {
    my (undef, undef, $b) = status();
    $bodies{$b}++;
}
is(scalar(keys %bodies), 1, 'same status from every connection');

# LaunchDarkly down: events stay queued, failed POSTs counted

$mock->script(default => { status => 503 });
$t->http_post('/v1/track', $J->encode({ userId => 'u', event => 'S-down-1',
                                        timestamp => $TS }));
$t->http_post('/v1/track', $J->encode({ userId => 'u', event => 'S-down-2',
                                        timestamp => $TS }));
Test::Ldseg::wait_for(sub { grep { $_->{status} eq '503' } $mock->posts }, 10);
Test::Ldseg::wait_for(sub { my (undef, undef, undef, $x) = status();
                            $x && $x->{posts}{failed} >= 1
                            && $x->{posts}{in_flight} == 0 }, 5);

(undef, undef, $body, $s) = status();
$s ||= {};
is($s->{queue}{events}, 2, 'LD down: two events queued');
cmp_ok($s->{queue}{bytes}, '>', 0, 'LD down: queue bytes');
cmp_ok($s->{posts}{failed}, '>=', 1, 'LD down: failed posts counted');
is($s->{delivered}, 7, 'LD down: nothing more delivered');
is($s->{dropped}, 0, 'LD down: nothing dropped');

# Prometheus, while the queue holds events

my ($pcode, $ph, $prom) = $t->http_get('/status?format=prometheus');
(undef, undef, undef, my $js) = status();
is($pcode, 200, 'prometheus: 200');
like($ph->{'content-type'} // '', qr{^text/plain}, 'prometheus: text/plain');

my (%type, %sample, @bad, @untyped);
for my $line (split /\n/, $prom) {
    if ($line =~ /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S/) {
        next;
    }
    if ($line =~ /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge)$/) {
        push @bad, "second TYPE for $1" if $type{$1}++;
        next;
    }
    if ($line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)
                  (\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"
                    (?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*\})?
                  \ (-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)$/x)
    {
        my ($name, $labels, $v) = ($1, $2 // '', $3);
        (my $base = $name) =~ s/_total$//;
        push @untyped, $name unless $type{$name} || $type{$base};
        $sample{"$name$labels"} = $v;
        next;
    }
    push @bad, $line;
}

is(join("\n", @bad), '', 'prometheus: every line is HELP, TYPE or a sample');
is(join(',', @untyped), '', 'prometheus: a TYPE line before every metric');
ok($prom =~ /\n\z/, 'prometheus: ends with a newline');

# a counter may be split by a "reason" label: then its samples add up

sub prom_counter {
    my ($name) = @_;
    return $sample{"ldseg_${name}_total"}
        if defined $sample{"ldseg_${name}_total"};
    my @l = grep { /^ldseg_${name}_total\{/ } keys %sample;
    return 'none' unless @l;
    my $sum = 0;
    $sum += $sample{$_} for @l;
    return $sum;
}

is(join(',', map { "$_=" . prom_counter($_) } @COUNTERS),
   join(',', map { "$_=$js->{$_}" } @COUNTERS),
   'prometheus: counters match JSON');
is($sample{ldseg_queue_events}, 2, 'prometheus: ldseg_queue_events');
is($sample{ldseg_queue_bytes}, $js->{queue}{bytes},
   'prometheus: ldseg_queue_bytes');
is($sample{'ldseg_rejected_total{reason="missing_event"}'}, 2,
   'prometheus: rejected missing_event');
is($sample{'ldseg_rejected_total{reason="invalid_json"}'}, 1,
   'prometheus: rejected invalid_json');
my $psum = 0;
$psum += $sample{$_} for grep { /^ldseg_rejected_total\{/ } keys %sample;
is($psum, $js->{rejected}, 'prometheus: reasons add up');

# LaunchDarkly back

$mock->script();
is($mock->wait_events(9, 15), 9, 'queued events delivered after recovery');
Test::Ldseg::wait_for(sub { my (undef, undef, undef, $x) = status();
                            $x && $x->{delivered} == 9 }, 5);
(undef, undef, undef, $s) = status();
ok($s && $s->{delivered} == 9 && $s->{queue}{events} == 0
   && $s->{queued} == 9, 'recovered: delivered 9, queue empty');

# methods

my ($mcode) = $t->http_post('/status', '{}');
is($mcode, 405, 'POST to status: 405');
my ($hcode, $hh, $hbody) = $t->http_request(method => 'HEAD',
                                            path => '/status');
ok($hcode == 200 && $hbody eq '', 'HEAD: 200 without a body');

###############################################################################
