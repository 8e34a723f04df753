#!/usr/bin/perl

# The number of destinations (events URL + client-side ID) is bounded by
# ldseg_max_destinations: with a client-controlled client-side ID, a request
# that needs one more destination than allowed gets 503 with Retry-After and
# the JSON code "too_many_destinations" (counted per message), while the
# existing destinations go on.  Empty destinations are freed once their
# events are delivered (status queue.destinations), and new IDs are
# accepted again.  nginx -t refuses ldseg_max_destinations 0.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::Ldseg;

use JSON::PP;

###############################################################################

my $t = Test::Ldseg->new()->plan(20);
my $mock = $t->mock(default => { status => 503 });

my $CONF = <<'EOF';
%%TEST_GLOBALS%%

worker_processes 2;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    ldseg_zone ldseg 1m;
    ldseg_events_url %%MOCK%%;
    ldseg_flush_interval 100ms;
    ldseg_retry_max_delay 1s;
    ldseg_max_destinations %%MAX%%;

    server {
        listen 127.0.0.1:%%PORT_8080%%;

        location /v1/ {
            ldseg on;
            ldseg_client_side_id $arg_id;
        }

        location /status {
            ldseg_status;
        }
    }
}
EOF

sub conf {
    my ($max) = @_;
    (my $c = $CONF) =~ s/%%MAX%%/$max/;
    return $c;
}

$t->conf_ok(conf(1), 'nginx -t: ldseg_max_destinations 1');
$t->conf_fails(conf(0), qr/^(?!.*unknown directive).*ldseg_max_destinations/,
               'nginx -t: ldseg_max_destinations 0 refused');
$t->conf_fails(conf('many'),
               qr/^(?!.*unknown directive).*ldseg_max_destinations/,
               'nginx -t: ldseg_max_destinations many refused');

# the real configuration; where the directive is unknown (today), nginx
# runs without it so that the rest shows what is missing

$t->write_file_expand('nginx.conf', conf(5));
if (!eval { $t->run; 1 }) {
    diag("nginx did not start: $@");
    (my $c = conf(5)) =~ s/\n\s*ldseg_max_destinations \d+;//;
    $t->write_file_expand('nginx.conf', $c);
    $t->run;
}

###############################################################################

my $J = JSON::PP->new->utf8->canonical;
my $TS = '2022-03-04T05:06:07.008Z';

sub track {
    my ($id, $key) = @_;
    my ($code, $h, $body) = $t->http_post("/v1/track?id=$id",
        $J->encode({ userId => "u-$key", event => $key, timestamp => $TS }));
    return ($code, $h, $body);
}

sub batch {
    my ($id, @keys) = @_;
    my ($code, $h, $body) = $t->http_post("/v1/batch?id=$id",
        $J->encode({ batch => [ map { { type => 'track', userId => "u-$_",
                                        event => $_, timestamp => $TS } }
                                @keys ] }));
    return ($code, $h, $body);
}

# five destinations; LaunchDarkly answers 503, so all keep their events

my @codes = map { (track("D$_", "K$_"))[0] } 1 .. 5;
is("@codes", '200 200 200 200 200', 'five client-side IDs accepted');

ok(Test::Ldseg::wait_for(sub {
       my %id = map { $_->{client_id} => 1 } $mock->posts;
       keys %id >= 5 }, 10), 'POSTs for the five IDs answered 503');

# a sixth: refused, from whichever worker answers

my ($code, $h, $body) = track('D6', 'K6');
my $j = Test::Ldseg::json($body) || {};
is($code, 503, 'sixth ID: 503');
like($h->{'retry-after'} // '', qr/^\d+$/, 'sixth ID: Retry-After');
ok(JSON::PP::is_bool($j->{success}) && !$j->{success}
   && ($j->{code} // '') eq 'too_many_destinations'
   && length($j->{message} // ''), 'sixth ID: code too_many_destinations')
    or diag($body);

my @more = map { (batch('D6', "K6-$_-1", "K6-$_-2", "K6-$_-3"))[0] } 1 .. 3;
is("@more", '503 503 503', 'sixth ID: batches refused (both workers)');

# the existing ones go on

@codes = map { (track("D$_", "K$_-b"))[0] } 1 .. 5;
is("@codes", '200 200 200 200 200', 'the five IDs still accepted');

my $s = $t->status;
is($s && $s->{rejected_reasons}{too_many_destinations}, 10,
   'status: too_many_destinations counted per message');
is($s && $s->{queue}{destinations}, 5, 'status: queue.destinations 5');
is(scalar(grep { $_->{client_id} eq 'D6' } $mock->posts), 0,
   'nothing sent for the sixth ID');

# LaunchDarkly back: everything delivered, the empty destinations freed

$mock->script(default => { status => 202 });

my @want = map { ("K$_", "K$_-b") } 1 .. 5;
my $r = Test::Ldseg::wait_delivered(mock => $mock, acked => \@want,
                                    match => qr/^K/, timeout => 20);
is(join(',', @{ $r->{missing} }) . ' ' . join(',', @{ $r->{unacked} }), ' ',
   'the five IDs delivered, nothing of the sixth');

Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && ($s->{queue}{destinations} // -1) == 0 }, 10);
is($s && $s->{queue}{destinations}, 0,
   'status: queue.destinations 0 once delivered');

# room for five new ones

@codes = map { (track("N$_", "L$_"))[0] } 1 .. 5;
is("@codes", '200 200 200 200 200', 'five new IDs accepted');
$r = Test::Ldseg::wait_delivered(mock => $mock, acked => [ map { "L$_" } 1 .. 5 ],
                                 match => qr/^L/, timeout => 20);
is(scalar @{ $r->{missing} }, 0, 'and delivered');

Test::Ldseg::wait_for(sub { $s = $t->status;
                            $s && ($s->{queue}{destinations} // -1) == 0 }, 10);
($code) = track('D6', 'K6-last');
is($code, 200, 'the sixth ID accepted once there is room');
is($mock->wait_events(16, 10), 16, 'and delivered');
is($t->status->{dropped}, 0, 'nothing dropped');

###############################################################################
