# R1's lock holder (vm-storm.sh): open each file read-write, take an
# exclusive flock (on NFS a whole-file POSIX lock of the file's client), then
# create the READY file and keep the locks until killed.
#   perl storm-hold.pl READY FILE...
use Fcntl qw(:flock);
my $ready = shift;
my @held;
for my $f (@ARGV) {
    open(my $h, '+<', $f) or die "open $f: $!\n";
    flock($h, LOCK_EX) or die "flock $f: $!\n";
    push @held, $h;
}
open(my $r, '>', $ready) or die "$ready: $!\n";
close $r;
sleep 3600 while 1;
