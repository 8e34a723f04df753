#!/usr/bin/perl

# (C) ldseg authors

# Runs the C unit tests of the core (build/unit/test_*), building them
# with "make unit" when they are missing; each binary is one test.

###############################################################################

use warnings;
use strict;

use Test::More;
use FindBin;
use Cwd qw/ abs_path /;

###############################################################################

my $root = abs_path("$FindBin::Bin/..");

chdir $root or die "cannot chdir to $root: $!";

my @srcs = glob("t/unit/test_*.c");
my @bins = map { m{t/unit/(test_\w+)\.c$}; "build/unit/$1" } @srcs;

if (grep { !-x $_ } @bins) {
	system('make', '-s', 'unit') == 0 or BAIL_OUT('make unit failed');
}

plan(tests => scalar @bins);

$ENV{LDSEG_TEST_DIR} = $root;

for my $bin (@bins) {
	my $out = `$bin 2>&1`;
	my $rc = $?;
	my $n = () = $out =~ /^ok /mg;
	my @failed = $out =~ /^(not ok .*)$/mg;

	ok($rc == 0 && !@failed && $out =~ /^1\.\.(\d+)$/m && $1 == $n,
		"$bin: $n passed") or diag(join("\n", @failed[0 .. ($#failed < 20
			? $#failed : 19)]), "\nexit status $rc");
}

###############################################################################
