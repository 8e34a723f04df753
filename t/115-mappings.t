#!/usr/bin/perl

# ldseg_mappings: subscriptions in Segment's own format.  Every set of
# t/unit/mapping_cases.json (subscription files checked against Segment's
# destination code by mapping_cases.js) is served by a location of its own;
# each case is POSTed to its endpoint (in a batch with the set's context,
# for the sets about a batch's context), one set also as a batch, and the
# answers and the events LaunchDarkly receives must be the oracle's.  The
# status counters count the events a message made; "nginx -t" refuses
# what Segment would refuse, naming the file, the subscription and the
# field.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use Encode qw(encode_utf8);
use JSON::PP;
use Time::HiRes qw(time);

###############################################################################

binmode(Test::More->builder->$_, ':encoding(UTF-8)')
    for qw(output failure_output todo_output);

my $file = "$FindBin::Bin/unit/mapping_cases.json";
open my $fh, '<', $file or die "$file: $!";
my $all = JSON::PP->new->utf8->decode(do { local $/; <$fh> });
close $fh;

my @sets = @{ $all->{sets} };
my $ncases = 0;
$ncases += @{ $_->{cases} } for @sets;

my $nctx = grep { defined $_->{batch_context} } @sets;
my $t = Test::Ldseg->new()->plan($ncases + $nctx + 20);
my $mock = $t->mock;

my $J = JSON::PP->new->utf8->canonical;

# one subscriptions file and one location per set

my $locations = '';

for my $s (@sets) {
    $t->write_file("$s->{id}.json", $J->encode($s->{subscriptions}));
    $locations .= <<"EOF";
        location /$s->{id}/v1/ {
            ldseg on;
            ldseg_mappings %%TESTDIR%%/$s->{id}.json;
        }

EOF
}

(my $conf = <<'EOF') =~ s/%%LOCATIONS%%/$locations/;
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 4m;
    ldseg_events_url %%MOCK%%;
    ldseg_client_side_id CLIENT-SIDE-ID;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 5;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

%%LOCATIONS%%
        location /builtin/v1/ {
            ldseg on;
            ldseg_mappings off;
        }

        location = /status {
            ldseg_status;
        }
    }
}
EOF

$t->write_file_expand('nginx.conf', $conf);
$t->run;

###############################################################################

my (@want, $nevents);

# expected events, "NOW" for the time of processing

sub expect {
    my ($case, $events, $t0, $t1) = @_;

    for my $e (@$events) {
        my %e = %$e;
        my $date = $e{creationDate};        # a copy: "eq" makes it a string
        my $now = defined $date && $date eq 'NOW';
        $e{creationDate} = 0 if $now;
        push @want, { case => $case, event => Test::Ldseg::canon(\%e),
                      now => $now, t0 => $t0, t1 => $t1 };
        $nevents++;
    }
}

for my $s (@sets) {
    next if defined $s->{batch_context};

    for my $c (@{ $s->{cases} }) {
        my $t0 = time;
        my ($code, undef, $raw) = $t->http_post("/$s->{id}$c->{path}",
            encode_utf8($c->{raw}), 'Content-Type' => 'application/json');
        my $t1 = time;

        is($code, $c->{status}, "$c->{id}: status $c->{status}")
            or diag("$raw");

        expect($c->{id}, $c->{events}, $t0, $t1);
    }
}

# a batch's context: each case alone in a batch with the context after the
# array, then the whole set in one batch with the context first; a message
# without a context of its own reads the batch's

for my $s (grep { defined $_->{batch_context} } @sets) {
    for my $c (@{ $s->{cases} }) {
        my $t0 = time;
        my ($code, undef, $raw) = $t->http_post("/$s->{id}/v1/batch",
            encode_utf8('{"batch":[' . $c->{raw} . '],"context":'
                        . $s->{batch_context} . '}'),
            'Content-Type' => 'application/json');
        my $t1 = time;
        my $j = Test::Ldseg::json($raw) || {};

        ok($code == 200 && ($j->{rejected} // 0)
                           == ($c->{status} == 400 ? 1 : 0),
           "$c->{id}: in a batch with its context last, "
           . ($c->{status} == 400 ? 'rejected' : 'accepted'))
            or diag("$code $raw");

        expect($c->{id}, $c->{events}, $t0, $t1);
    }

    my $t0 = time;
    my ($code, undef, $raw) = $t->http_post("/$s->{id}/v1/batch",
        encode_utf8('{"context":' . $s->{batch_context} . ',"batch":['
                    . join(',', map { $_->{raw} } @{ $s->{cases} }) . ']}'),
        'Content-Type' => 'application/json');
    my $t1 = time;

    is($code, 200, "$s->{id}: the set in one batch, its context first");
    expect("$s->{id} batch[$_]", $s->{cases}[$_]{events}, $t0, $t1)
        for 0 .. $#{ $s->{cases} };
}

# the multi set again as one batch: several events from one message, over
# payloads of ldseg_batch_size 5

my ($multi) = grep { $_->{id} eq 'multi' } @sets;
my $batch = '{"batch":[' . join(',', map { $_->{raw} } @{ $multi->{cases} })
            . ']}';

my $t0 = time;
my ($code, undef, $raw) = $t->http_post('/multi/v1/batch',
                                        encode_utf8($batch),
                                        'Content-Type' => 'application/json');
my $t1 = time;

is($code, 200, 'multi batch: 200');
my $j = Test::Ldseg::json($raw) || {};
ok(!$j->{rejected}, 'multi batch: nothing rejected (a refusal next to '
   . 'events is not a rejection)');
expect("multi batch[$_]", $multi->{cases}[$_]{events}, $t0, $t1)
    for 0 .. $#{ $multi->{cases} };

###############################################################################

$mock->wait_events($nevents, 30);
select undef, undef, undef, 1;

my @posts = $mock->posts;
my ($missing, $extra) = Test::Ldseg::match_events(\@want, \@posts);

ok(!%$missing, "all $nevents events delivered as the oracle made them")
    or diag(join "\n", map { my $c = $_;
                             map { "missing ($c): "
                                   . Test::Ldseg::canon_text($_->{event}) }
                             @{ $missing->{$c} } } sort keys %$missing);

ok(!@$extra, 'no unexpected or duplicated events')
    or diag(join "\n", map { 'extra: ' . Test::Ldseg::canon_text($_->{event}) }
                       @$extra);

my $most = 0;
for my $c (map { @{ $_->{cases} } } @sets) {
    $most = @{ $c->{events} } if @{ $c->{events} } > $most;
}

my $big = grep { my $b = Test::Ldseg::json($_->{body});
                 ref $b eq 'ARRAY' && @$b > 5 + $most - 1 } @posts;
is($big, 0, 'no POST holds more than the batch size plus one message\'s '
   . 'other events');

my $s = $t->status('/status');
is($s && $s->{translated}, $nevents,
   'status: translated counts LaunchDarkly events, several per message');
is($s && $s->{received}, $s && $s->{accepted} + $s->{rejected},
   'status: received = accepted + rejected');
ok($s && $s->{rejected_reasons}{invalid_context}
   && $s->{rejected_reasons}{missing_identity}
   && $s->{rejected_reasons}{invalid_metric},
   'status: the action refusals counted by reason');
ok($s && $s->{skipped_reasons}{not_subscribed},
   'status: a message no subscription matches is counted as skipped');

like($t->read_file('error.log'),
     qr/a subscription refused it, the other subscriptions' events are/,
     'a refusal next to events is logged');

$t->stop;

###############################################################################

# nginx -t

sub conf_with {
    my ($loc, $format) = @_;
    $format //= '';

    return <<"EOF";
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_client_side_id cfg-test;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            $format
            $loc
        }
    }
}
EOF
}

sub sub_file {
    my ($name, $mapping, %o) = @_;
    my $subs = [ { name => 'My subscription',
                   subscribe => $o{subscribe} // 'type = "track"',
                   partnerAction => $o{action} // 'trackEvent',
                   mapping => $mapping } ];
    $t->write_file($name, $J->encode($subs));
}

sub_file('ok.json', { user_key => { '@path' => '$.userId' },
                      event_name => { '@template' => '{{event}}!' } });
$t->conf_ok(conf_with('ldseg_mappings %%TESTDIR%%/ok.json;'),
            'ldseg_mappings with a valid file');

sub_file('liquid.json', { user_key => { '@liquid' => '{{ userId }}' },
                          event_name => 'e' });
$t->conf_fails(conf_with('ldseg_mappings %%TESTDIR%%/liquid.json;'),
    qr/ldseg_mappings ".*liquid\.json": subscription "My subscription": "mapping\.user_key\.\@liquid": the directive "\@liquid" is not supported/,
    '@liquid refused, naming the file, the subscription and the field');

sub_file('unknown.json', { user_key => 'u',
                           event_name => { '@if' => { exists => 'x',
                               then => { '@uppercase' => 'x' } } } });
$t->conf_fails(conf_with('ldseg_mappings %%TESTDIR%%/unknown.json;'),
    qr/subscription "My subscription": "mapping\.event_name\.\@if\.then\.\@uppercase": unknown directive "\@uppercase"/,
    'an unknown directive refused where it is');

sub_file('fql.json', { user_key => 'u', event_name => 'e' },
         subscribe => 'type = "track" and (event = "a"');
$t->conf_fails(conf_with('ldseg_mappings %%TESTDIR%%/fql.json;'),
    qr/subscription "My subscription": invalid FQL in "subscribe"/,
    'invalid FQL refused');

sub_file('action.json', { user_key => 'u', event_name => 'e' },
         action => 'identifyUser');
$t->conf_fails(conf_with('ldseg_mappings %%TESTDIR%%/action.json;'),
    qr/unknown "partnerAction"/, 'unknown partnerAction refused');

sub_file('required.json', { user_key => 'u' });
$t->conf_fails(conf_with('ldseg_mappings %%TESTDIR%%/required.json;'),
    qr/the required field "event_name" is not mapped/,
    'a missing required mapping refused');

$t->write_file('broken.json', '[{"name": "x",');
$t->conf_fails(conf_with('ldseg_mappings %%TESTDIR%%/broken.json;'),
    qr/ldseg_mappings ".*broken\.json": invalid JSON/, 'invalid JSON refused');

$t->conf_fails(conf_with('ldseg_mappings %%TESTDIR%%/nonexistent.json;'),
    qr/nonexistent\.json.*failed/, 'a missing file refused');

$t->conf_fails(conf_with('ldseg_mappings %%TESTDIR%%/ok.json;',
                         'ldseg_format classic;'),
    qr/"ldseg_mappings" needs "ldseg_format actions"/,
    'mappings with the classic format refused');

$t->conf_fails(conf_with("ldseg_mappings %%TESTDIR%%/ok.json;\n"
                         . "            ldseg_mappings off;"),
    qr/"ldseg_mappings" directive is duplicate/, 'duplicate refused');

###############################################################################
