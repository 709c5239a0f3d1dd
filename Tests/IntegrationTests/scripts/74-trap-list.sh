# Listing and resetting traps; death by an untrapped HUP skips the EXIT trap.
trap 'echo exit-handler' EXIT
trap 'echo hup' HUP
trap '' QUIT
trap > traps1.txt
sort traps1.txt
trap - HUP
trap > traps2.txt
sort traps2.txt
kill -HUP $$
echo "unreachable after HUP"
