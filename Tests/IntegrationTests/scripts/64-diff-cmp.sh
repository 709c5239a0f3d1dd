# diff and cmp (diff -u headers hold timestamps, so they are cut off).
printf 'a\nb\nc\nd\n' > x
printf 'a\nB\nc\nd\ne\n' > y
diff x y | tail -n +3; diff x y >/dev/null; echo "diff status=$?"
diff -u x y | tail -n +3
diff x x && echo "identical"
cmp x y; echo "cmp status=$?"
cmp -s x x && echo "cmp same"
cp x z
diff -q x z && echo "quiet same"
mkdir d1 d2; echo 1 > d1/f; echo 2 > d2/f; echo only > d1/g
diff -r d1 d2 | grep -v '^---' | grep -v '^+++' ; echo done
