#!/usr/bin/perl

# Segment's pipeline before the destination, through nginx:
# - "integrations": {"All": false} (unless LaunchDarkly is named true),
#   {"LaunchDarkly": false}, {"LaunchDarkly (Actions)": false} produce no
#   event; the message is accepted and counted as skipped, reason
#   integrations_disabled; a batch's own integrations apply to messages
#   that have none;
# - clock skew (ldseg_clock_skew, on by default): with a sentAt (the
#   message's or the batch's) creationDate is receivedAt - (sentAt -
#   timestamp); without a timestamp it is the receive time; off, the
#   timestamp as sent;
# - an empty userId, anonymousId or previousId is absent.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;
use Time::HiRes qw(time);

###############################################################################

my $t = Test::Ldseg->new()->plan(27);
my $mock = $t->mock;

$t->write_file_expand('nginx.conf', <<'EOF');
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 4m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id PIPE;
        }

        location /noskew/v1/ {
            ldseg on;
            ldseg_client_side_id PIPE;
            ldseg_clock_skew off;
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
my $TS = '2022-05-04T03:02:03.000Z';
my $TS_MS = 1651633323000;

sub post {
    my ($path, $body) = @_;
    my ($code, undef, $raw) = $t->http_post($path,
        ref $body ? $J->encode($body) : $body);
    return ($code, Test::Ldseg::json($raw), $raw);
}

sub track {
    my ($key, %m) = @_;
    return { type => 'track', userId => 'u', event => $key,
             timestamp => $TS, %m };
}

# all events by key, once the mock has $n of them

sub events {
    my ($n) = @_;
    $mock->wait_events($n, 10);
    my %e;
    push @{ $e{ $_->{key} } }, $_ for $mock->events;
    return \%e;
}

my $sent = 0;

###############################################################################

# integrations, one message at a time

my @off = (
    [ 'I-all-false', { All => JSON::PP::false } ],
    [ 'I-ld-false', { LaunchDarkly => JSON::PP::false } ],
    [ 'I-actions-false', { 'LaunchDarkly (Actions)' => JSON::PP::false } ],
    [ 'I-actions-before-ld', { 'LaunchDarkly (Actions)' => JSON::PP::false,
                               LaunchDarkly => JSON::PP::true } ],
);
my @on = (
    [ 'I-all-false-actions-true', { All => JSON::PP::false,
                                    'LaunchDarkly (Actions)' =>
                                        JSON::PP::true } ],
    [ 'I-all-false-ld-true', { All => JSON::PP::false,
                               LaunchDarkly => JSON::PP::true } ],
    [ 'I-options-object', { All => JSON::PP::false,
                            'LaunchDarkly (Actions)' => {} } ],
    [ 'I-zero', { All => 0 } ],
);

my @codes;
for my $c (@off, @on) {
    my ($code, $j) = post('/v1/track', track($c->[0],
                                             integrations => $c->[1]));
    push @codes, "$c->[0]:$code" . ($j && $j->{success} ? '' : ':fail');
}
is(join(' ', grep { !/:200$/ } @codes), '', 'every one answered 200');
$sent += @on;

# a batch: its integrations for the messages without their own; a
# destination that does not run refuses nothing either

my ($code, $j, $raw) = post('/v1/batch', {
    batch => [
        track('B-inherits'),
        track('B-own-empty', integrations => {}),
        track('B-own-null', integrations => undef),
        track('B-bad-revenue', properties => { revenue => 'n/a' }),
        { type => 'identify', userId => 'u', anonymousId => 'a',
          integrations => { 'LaunchDarkly (Actions)' => JSON::PP::true } },
    ],
    integrations => { All => JSON::PP::false },
});
ok($code == 200 && $j && $j->{success} && !$j->{rejected},
   'batch with integrations: 200, nothing rejected') or diag($raw);
$sent += 2;

my $e = events($sent);
is(join(',', sort grep { /^[IB]-/ } keys %$e),
   join(',', sort('B-own-empty', map { $_->[0] } @on)),
   'events only for the messages LaunchDarkly is on for');
is(scalar(grep { $_->{kind} eq 'alias' } $mock->events), 1,
   'the identify that names LaunchDarkly (Actions) true: its alias event');

my $s = $t->status;
is($s && $s->{skipped_reasons}{integrations_disabled}, 7,
   'status: skipped_reasons.integrations_disabled 7');
ok($s && $s->{skipped} == 7 && $s->{rejected} == 0
   && $s->{accepted} == $s->{received},
   'status: skipped 7, nothing rejected, accepted = received');

###############################################################################

# clock skew: a client whose clock is 10 s ahead of when it sent them

my $t0 = time;
($code) = post('/v1/track', track('C-message-sentAt',
                                  sentAt => '2022-05-04T03:02:13.000Z'));
($code) = post('/v1/batch', { batch => [ track('C-batch-sentAt'),
                                         track('C-own-sentAt',
                                               sentAt => $TS) ],
                              sentAt => '2022-05-04T03:02:13.000Z' });
($code) = post('/v1/track', { userId => 'u', event => 'C-no-timestamp',
                              sentAt => '2022-05-04T03:02:13.000Z' });
my $t1 = time;
($code) = post('/noskew/v1/track', track('C-off',
                                         sentAt => '2022-05-04T03:02:13Z'));
($code) = post('/noskew/v1/batch', { batch => [ track('C-off-batch') ],
                                     sentAt => '2022-05-04T03:02:13Z' });
($code) = post('/v1/track', track('C-no-sentAt'));
$sent += 7;

$e = events($sent);

sub created {
    my ($key) = @_;
    my $x = $e->{$key} or return -1;
    return $x->[0]{creationDate} // -1;
}

# receivedAt is between $t0 and $t1 (a second of slack for nginx's clock)

sub received_minus {
    my ($key, $ms) = @_;
    my $c = created($key);
    my $ok = $c >= int($t0 * 1000) - $ms - 1000
             && $c <= int($t1 * 1000) - $ms + 1000;
    return $ok ? 'ok' : "$c not within receipt - $ms ms";
}

is(received_minus('C-message-sentAt', 10000), 'ok',
   "message's sentAt: 10 s before receipt");
is(received_minus('C-batch-sentAt', 10000), 'ok',
   "batch's sentAt: 10 s before receipt");
is(received_minus('C-own-sentAt', 0), 'ok',
   'a message sentAt its timestamp: at receipt, the batch\'s not used');
is(received_minus('C-no-timestamp', 0), 'ok',
   'no timestamp: the receive time');
is(created('C-off'), $TS_MS, 'ldseg_clock_skew off: the timestamp as sent');
is(created('C-off-batch'), $TS_MS,
   'ldseg_clock_skew off: a batch sentAt ignored');
is(created('C-no-sentAt'), $TS_MS, 'no sentAt: the timestamp as sent');

###############################################################################

# empty identities are absent

($code, $j, $raw) = post('/v1/track', { userId => '', anonymousId => 'anon-1',
                                        event => 'E-empty-user',
                                        timestamp => $TS });
is($code, 200, 'track with userId "" and an anonymousId: 200') or diag($raw);

($code, $j, $raw) = post('/v1/track', { userId => 'user-2', anonymousId => '',
                                        event => 'E-empty-anon',
                                        timestamp => $TS });
is($code, 200, 'track with anonymousId "": 200') or diag($raw);

($code, $j, $raw) = post('/v1/identify', { userId => '',
                                           anonymousId => 'anon-3',
                                           timestamp => $TS });
ok($code == 200 && $j && $j->{success}, 'identify with userId "" and an '
   . 'anonymousId: 200') or diag($raw);

($code, $j, $raw) = post('/v1/alias', { userId => 'user-4', previousId => '',
                                        anonymousId => 'anon-4',
                                        timestamp => $TS });
is($code, 200, 'alias with previousId "" and an anonymousId: 200')
    or diag($raw);

($code, $j, $raw) = post('/v1/track', { userId => '', anonymousId => '',
                                        event => 'E-none', timestamp => $TS });
ok($code == 400 && $j && ($j->{code} // '') eq 'missing_identity',
   'track with both "": 400 missing_identity') or diag($raw);

($code, $j, $raw) = post('/v1/batch', { batch => [
    { type => 'identify', userId => '', anonymousId => 'anon-5' },
    { type => 'track', userId => '', anonymousId => 'anon-6',
      event => 'E-batch-empty-user', timestamp => $TS } ] });
ok($code == 200 && $j && $j->{success} && !$j->{rejected},
   'batch with empty userIds: 200, nothing rejected') or diag($raw);
$sent += 4;

$e = events($sent);

is($J->encode($e->{'E-empty-user'}[0]{contextKeys} // {}),
   '{"unauthenticatedUser":"anon-1","user":"anon-1"}',
   'userId "": anonymousId is the user');
is($J->encode($e->{'E-empty-anon'}[0]{contextKeys} // {}),
   '{"user":"user-2"}', 'anonymousId "": no unauthenticatedUser');
is($J->encode($e->{'E-batch-empty-user'}[0]{contextKeys} // {}),
   '{"unauthenticatedUser":"anon-6","user":"anon-6"}',
   'in a batch too');
my @alias = grep { $_->{kind} eq 'alias' && $_->{key} eq 'user-4' }
            $mock->events;
is(scalar(@alias) . ' ' . ($alias[0] && $alias[0]{previousKey} // ''),
   '1 anon-4', 'alias: previousId "" falls back to anonymousId');

$s = $t->status;
is($s && $s->{skipped_reasons}{identify_without_user_id}, 2,
   'status: the two identifies without a userId are skipped');

# Prometheus: skipped by reason, adding up

my ($pcode, undef, $prom) = $t->http_get('/status?format=prometheus');
my %sample = map { /^(\S+) (\S+)$/ ? ($1 => $2) : () } split /\n/, $prom;
is($sample{'ldseg_skipped_total{reason="integrations_disabled"}'}, 7,
   'prometheus: ldseg_skipped_total{reason="integrations_disabled"}');
my $sum = 0;
$sum += $sample{$_} for grep { /^ldseg_skipped_total\{/ } keys %sample;
is($sum, $s && $s->{skipped}, 'prometheus: skipped reasons add up');
like($prom, qr/^# TYPE ldseg_duplicate_total counter$/m,
     'prometheus: ldseg_duplicate_total declared');

###############################################################################
