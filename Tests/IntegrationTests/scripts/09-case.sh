# case statements with globs and alternatives.
classify() {
  case "$1" in
    [0-9]|[0-9][0-9]) echo "$1: small number" ;;
    *.txt) echo "$1: text file" ;;
    a*|b*) echo "$1: starts with a or b" ;;
    "") echo "empty" ;;
    ?) echo "$1: single char" ;;
    *) echo "$1: other" ;;
  esac
}
for w in 7 42 notes.txt apple banana x "" zebra 123; do classify "$w"; done
case foo in f*) echo first;; foo) echo second;; esac
case "a b" in "a b") echo "quoted space matched" ;; esac
case x in y) echo no ;; esac; echo "no-match status=$?"
