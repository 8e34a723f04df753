#!/usr/bin/perl

# (C) ldseg authors

# Writes the adversarial request bodies of `make bench-adversarial` into
# the directory given as the first argument (default build/bench/adversarial).
# Deterministic: the same bytes on every run and every machine (a fixed
# linear congruential generator, gzip without name or time stamp).
#
#   objects        /v1/batch, 15 messages, anonymousId = 7000 x {} (userId
#                  set): the 574-byte gzip that once queued 1.68 MB
#   numbers        /v1/batch, 15 messages near 32 KB, anonymousId = an array
#                  of 17-digit numbers such as 0.30000000000000004 (userId
#                  set)
#   numbers-cap    /v1/batch, messages whose anonymousId array of 17-digit
#                  numbers stringifies to just under the 1 KB identity bound
#                  (accepted: every number is formatted)
#   numbers-exp    the same with exponents near 1e-300 (the slow path of
#                  strtod() and printf())
#   numbers-alone  /v1/batch, the arrays of "numbers" as anonymousId with no
#                  userId
#   numbers-ids    /v1/batch of 2500 small messages whose event, userId,
#                  previousId, anonymousId and revenue are 17-digit numbers
#   deep           /v1/batch, messages near 32 KB whose properties nest to
#                  the depth limit (64) over and over
#   deep-id        /v1/batch, anonymousId = arrays nested 60 deep around
#                  30 KB of white space (userId set)
#   tiny           /v1/batch of 2500 minimal track messages
#   gzip           /v1/batch of bench/track.json repeated up to 500 KB,
#                  gzip -9 (Content-Encoding: gzip)
#
# Also writes small versions (< 64 KB) for the fuzz corpus when called
# with --corpus DIR.

use warnings;
use strict;

use FindBin;

my $root = "$FindBin::Bin/../..";
my $corpus;

if (@ARGV && $ARGV[0] eq '--corpus') {
    shift @ARGV;
    $corpus = shift @ARGV or die "usage: gen.pl --corpus DIR\n";
}

my $out = shift @ARGV // "$root/build/bench/adversarial";

my $MAX_BATCH = 500 * 1024;
my $MAX_MSG = 32 * 1024;
my $seed = 20240601;

sub rnd {
    # 0 .. 2^31-1, deterministic
    $seed = ($seed * 1103515245 + 12345) % 2147483648;
    return $seed;
}

sub num17 {
    # a 17-significant-digit decimal, 0.1 <= x < 1 (or times 10^exp)
    my ($exp) = @_;
    my $d = sprintf("%d%08d%08d", 1 + rnd() % 9, rnd() % 100000000,
                    rnd() % 100000000);
    substr($d, -1) = 1 + rnd() % 9;
    return "0.$d" unless defined $exp;
    return substr($d, 0, 1) . "." . substr($d, 1) . "e$exp";
}

sub batch {
    my (@msgs) = @_;
    return '{"batch":[' . join(',', @msgs) . '],"sentAt":'
        . '"2026-11-21T12:00:00.000Z"}';
}

sub fill {
    # as many messages from the generator as fit in the batch limits
    my ($gen, $max_msgs) = @_;
    my (@m, $size);
    $size = 64;
    while (@m < ($max_msgs // 2500)) {
        my $x = $gen->(scalar @m);
        last if $size + length($x) + 1 > $MAX_BATCH;
        $size += length($x) + 1;
        push @m, $x;
    }
    return batch(@m);
}

sub msg {
    my ($i, %f) = @_;
    my $m = '{"type":"track","event":"Order Completed"';
    $m .= qq{,"userId":"user-$i"} unless $f{no_user};
    $m .= qq{,"anonymousId":$f{anon}} if defined $f{anon};
    $m .= qq{,"properties":$f{props}} if defined $f{props};
    $m .= ',"messageId":"adv-' . $i
        . '","timestamp":"2026-11-21T12:00:00.000Z"}';
    return $m;
}

sub numbers_array {
    # [n,n,...] of 17-digit numbers up to $max bytes
    my ($max, $exp) = @_;
    my $a = '[';
    for (;;) {
        my $n = num17($exp);
        last if length($a) + length($n) + 2 > $max;
        $a .= ($a eq '[' ? '' : ',') . $n;
    }
    return "$a]";
}

sub cap_array {
    # numbers whose String() stays within 1024 bytes (each prints as typed)
    my ($exp) = @_;
    my ($a, $s) = ('[', 0);
    for (;;) {
        my $n = num17($exp);
        # JavaScript prints 1.2e-300 with an exponent sign: "1.2e-300"
        my $add = length($n) + ($s ? 1 : 0);
        last if $s + $add > 1000;
        $s += $add;
        $a .= ($a eq '[' ? '' : ',') . $n;
    }
    return "$a]";
}

sub nest {
    my ($depth, $inner) = @_;
    return ('[' x $depth) . $inner . (']' x $depth);
}

my %body;

$body{objects} = batch(map {
    msg($_, anon => '[' . join(',', ('{}') x 7000) . ']')
} 0 .. 14);

my @arrays = map { numbers_array($MAX_MSG - 200) } 0 .. 14;

$body{numbers} = batch(map { msg($_, anon => $arrays[$_]) } 0 .. 14);

$body{'numbers-alone'} = batch(map {
    msg($_, anon => $arrays[$_], no_user => 1)
} 0 .. 14);

$body{'numbers-cap'} = fill(sub { msg($_[0], anon => cap_array()) });

$body{'numbers-exp'} = fill(sub {
    msg($_[0], anon => cap_array(-300 - rnd() % 7))
});

$body{'numbers-ids'} = fill(sub {
    my $i = shift;
    my $type = $i % 2 ? 'identify' : 'track';
    '{"type":"' . $type . '","event":' . num17(-300)
        . ',"userId":' . num17() . ',"previousId":' . num17(-301)
        . ',"anonymousId":[' . num17(-302) . ']'
        . ',"properties":{"revenue":"' . num17(-303) . '"}}'
});

{
    # properties: {"p0":[[[...]]],"p1":...}, each nested to the limit:
    # body {, batch [, message {, properties {, then 60 x [ = 64 levels
    my $inner = nest(60, '1,"k",true');
    $body{deep} = fill(sub {
        my $i = shift;
        my ($props, $n) = ('{', 0);
        while (length($props) + length($inner) + 300 < $MAX_MSG) {
            $props .= ($n ? ',' : '') . qq{"p$n":$inner};
            $n++;
        }
        msg($i, props => "$props}");
    });
}

$body{'deep-id'} = fill(sub {
    msg($_[0], anon => nest(60, ' ' x 30000));
});

$body{tiny} = fill(sub {
    '{"type":"track","event":"E","userId":"u' . ($_[0] % 10) . '"}'
});

{
    open(my $fh, '<', "$root/bench/track.json") or die "track.json: $!";
    local $/;
    my $t = <$fh>;
    close $fh;
    $t =~ s/\s+$//;
    $body{gzip} = fill(sub { $t });
}

sub write_file {
    my ($path, $data) = @_;
    open(my $fh, '>', $path) or die "$path: $!";
    binmode $fh;
    print $fh $data;
    close $fh or die "$path: $!";
}

if (defined $corpus) {
    # one small message or batch of each kind; the first byte picks the
    # endpoint for fuzz_segment (7: batch, 1: track)
    my %small = (
        'adv-objects' => "\x07" . batch(msg(0,
            anon => '[' . join(',', ('{}') x 7000) . ']')),
        'adv-objects-1024' => "\x01" . msg(0,
            anon => '[' . join(',', ('{}') x 64) . ']'),
        'adv-numbers' => "\x07" . batch(msg(0,
            anon => numbers_array(8000))),
        'adv-numbers-cap' => "\x01" . msg(0, anon => cap_array()),
        'adv-numbers-alone' => "\x01" . msg(0,
            anon => numbers_array(2000), no_user => 1),
        'adv-numbers-ids' => "\x07" . batch(map {
            '{"type":"' . ($_ % 2 ? 'alias' : 'track') . '","event":'
            . num17(-300) . ',"userId":' . num17() . ',"previousId":'
            . num17(21) . ',"anonymousId":[' . num17(-7) . ']'
            . ',"properties":{"revenue":"' . num17(22) . '",'
            . '"value":1e400}}'
        } 0 .. 20),
        # at the depth limit, not beyond: message {, properties {, "a" {
        'adv-deep' => "\x01" . msg(0, props => '{"a":'
            . nest(60, '{"k":[1e20,-0,"\u0000"]}') . '}'),
        'adv-deep-id' => "\x01" . msg(0, no_user => 1,
            anon => nest(60, ' ' x 2000 . '[1e21,{"a":[]},null,true]')),
        'adv-tiny' => "\x07" . batch(map {
            '{"type":"track","event":"E","userId":"u"}'
        } 0 .. 999),
    );
    for my $k (sort keys %small) {
        die "$k is too large for the corpus" if length($small{$k}) >= 65536;
        write_file("$corpus/$k", $small{$k});
    }
    exit 0;
}

system('mkdir', '-p', $out) == 0 or die "mkdir $out failed\n";

for my $k (sort keys %body) {
    die "$k: body too large" if length($body{$k}) > $MAX_BATCH;
    write_file("$out/$k.json", $body{$k});
}

# level 9, no name and no time stamp: the same bytes every time
system("gzip -9 -n -c '$out/gzip.json' > '$out/gzip.json.gz'") == 0
    or die "gzip failed\n";

write_file("$out/track.json", do {
    open(my $fh, '<', "$root/bench/track.json") or die "track.json: $!";
    local $/;
    my $t = <$fh>;
    $t =~ s/\s+$//;
    $t;
});
