#!/usr/bin/perl

# ldseg_mappings against what could hurt it.  At "nginx -t": a file too
# large, too many subscriptions, a file nested too deep are refused with a
# message naming the file; a path thousands of segments long is accepted.
# Through nginx: a batch whose context every message copies into its
# events is bounded per request (the rest rejected as too_large, counted
# and logged).  Reloads: a broken file is refused naming the file, the
# subscription and the field, and the old configuration keeps serving with
# its mappings; a changed file takes over after a good reload.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;
use Test::Ldseg::Reload qw(reload_refused);

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(19);
my $mock = $t->mock;

my $J = JSON::PP->new->utf8->canonical;

sub subs {
    my ($name, $event_name, %o) = @_;
    return [ { name => $name,
               subscribe => 'type = "track"',
               partnerAction => 'trackEvent',
               mapping => { user_key => { '@path' => '$.userId' },
                            event_name => $event_name,
                            %o } } ];
}

# the served file: first "v1"; the amplifier copies the context into events

$t->write_file('live.json', $J->encode(subs('Live', 'v1')));
$t->write_file('amp.json', $J->encode(subs('Amp', 'amp',
    event_properties => { '@path' => '$.context' })));

my $conf = <<'EOF';
%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 16m;
    ldseg_events_url %%MOCK%%;
    ldseg_client_side_id CLIENT-SIDE-ID;
    ldseg_flush_interval 100ms;
    ldseg_batch_size 50;

    client_max_body_size 1m;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /live/v1/ {
            ldseg on;
            ldseg_mappings %%TESTDIR%%/live.json;
        }

        location /amp/v1/ {
            ldseg on;
            ldseg_mappings %%TESTDIR%%/amp.json;
        }

        location = /status {
            ldseg_status;
        }
    }
}
EOF

$t->write_file_expand('nginx.conf', $conf);

###############################################################################

# nginx -t: bounds of the file

sub conf_with {
    my ($file) = @_;

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
            ldseg_mappings %%TESTDIR%%/$file;
        }
    }
}
EOF
}

my $one = subs('S', 'e')->[0];

$t->write_file('huge.json', '[' . $J->encode($one) . ']'
                            . (' ' x (1024 * 1024)));
$t->conf_fails(conf_with('huge.json'),
    qr/ldseg_mappings ".*huge\.json" is larger than 1048576 bytes/,
    'a file over 1 MB refused, naming it');

$t->write_file('many.json', '['
    . join(',', map { $J->encode({ %$one, name => "S$_" }) } 1 .. 1025)
    . ']');
$t->conf_fails(conf_with('many.json'),
    qr/ldseg_mappings ".*many\.json": more than 1024 subscriptions/,
    '1025 subscriptions refused');

$t->write_file('many-ok.json', '['
    . join(',', map { $J->encode({ %$one, name => "S$_" }) } 1 .. 1024)
    . ']');
$t->conf_ok(conf_with('many-ok.json'), '1024 subscriptions accepted');

my $deep = '{"a":' x 70 . '1' . '}' x 70;
$t->write_file('deep.json', '[' . $J->encode({ %$one, mapping => {
    %{ $one->{mapping} }, event_properties => { '@literal' => 'X' } } })
    =~ s/"X"/$deep/r . ']');
$t->conf_fails(conf_with('deep.json'),
    qr/ldseg_mappings ".*deep\.json": the file nests deeper than 64 levels/,
    'a file nested 70 levels deep refused');

$t->write_file('long-path.json', $J->encode(subs('S', { '@path' =>
    '$.properties' . ('.a' x 20000) })));
$t->conf_ok(conf_with('long-path.json'),
            'a path of 20000 segments accepted (no deeper than the scan)');

###############################################################################

$t->run;

# a batch of 2500 messages without a context, and a 20 KB context every one
# of them copies into its event: 50 MB of events unless bounded per request

my $n = 2500;
my $body = '{"batch":['
    . join(',', map { qq({"type":"track","userId":"u$_","event":"e"}) }
           1 .. $n)
    . '],"context":{"blob":"' . ('x' x (20 * 1024)) . '"}}';

my ($code, undef, $raw) = $t->http_post('/amp/v1/batch', $body,
                                        'Content-Type' => 'application/json');
my $j = Test::Ldseg::json($raw) || {};
my $kept = $n - @{ ref $j->{rejected} eq 'ARRAY' ? $j->{rejected} : [] };

ok($code == 200 && $kept > 0 && $kept <= 205,
   "amplifying batch: 200, $kept of $n messages make events (at most 4 MB "
   . 'of them), the rest rejected')
    or diag("$code " . substr($raw, 0, 300));

my $s = $t->status('/status');
is($s && $s->{rejected_reasons}{too_large}, $n - $kept,
   'status: the rest counted as too_large');

like($t->read_file('error.log'),
     qr/the request's mapped events would be too large/,
     'the too_large rejections are logged');

$mock->wait_events($kept, 30);
my $whole = 0;
$whole += () = $_->{body} =~ /"data":\{"blob":"x{20480}"\}/g for $mock->posts;
is($whole, $kept, 'the events made carry the batch context whole');

###############################################################################

# reloads: the file changes under a running nginx

sub post_track {
    my ($user) = @_;
    my ($code) = $t->http_post('/live/v1/track',
        qq({"userId":"$user","event":"x"}),
        'Content-Type' => 'application/json');
    return $code;
}

sub event_for {
    my ($user) = @_;
    my $e;
    Test::Ldseg::wait_for(sub {
        ($e) = grep { ($_->{contextKeys}{user} // '') eq $user }
               map { @{ Test::Ldseg::json($_->{body}) || [] } }
               grep { index($_->{body}, qq("$user")) >= 0 } $mock->posts;
        return defined $e;
    }, 10);
    return $e;
}

is(post_track('before'), 200, 'live: 200');
is(event_for('before') && event_for('before')->{key}, 'v1',
   'live: the event of the file as loaded');

$t->allow_log(qr/ldseg_mappings ".*live\.json"/);

$t->write_file('live.json', $J->encode(subs('Plan upgrades',
    { '@liquid' => '{{ event }}' })));

my $r = reload_refused($t, qr/ldseg_mappings/, 15);
ok($r->{refused} && !$r->{done}, 'reload with a broken file refused');
like($r->{log},
     qr/ldseg_mappings ".*live\.json": subscription "Plan upgrades": "mapping\.event_name\.\@liquid": the directive "\@liquid" is not supported/,
     'the refusal names the file, the subscription and the field');
is("@{ $r->{after} }", "@{ $r->{before} }", 'the old workers stay');

is(post_track('during'), 200, 'after the refused reload: 200');
is(event_for('during') && event_for('during')->{key}, 'v1',
   'after the refused reload: the old mappings still serve');

$t->write_file('live.json', $J->encode(subs('Live', 'v2')));
ok($t->reload, 'reload with a changed file');

is(post_track('after'), 200, 'after the reload: 200');
is(event_for('after') && event_for('after')->{key}, 'v2',
   'after the reload: the changed mappings serve');

$t->stop;

###############################################################################
