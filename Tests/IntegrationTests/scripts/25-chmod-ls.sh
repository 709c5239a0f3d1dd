# chmod with octal and symbolic modes; ls -l shows the mode column.
for m in 644 600 755 700 444 000 4755 2755 1777 777; do
  touch f$m && chmod $m f$m
done
chmod u+x,g-r f644
chmod o=r f600
chmod a-x f755
chmod +t f700
mkdir d && chmod 711 d
ls -l | awk 'NR > 1 {print $1, $NF}'
stat -c '%a %n' f4755 f2755 f1777 d
chmod 0644 f4755 && stat -c '%a %A' f4755
chmod -R go-rwx d && stat -c '%a' d
