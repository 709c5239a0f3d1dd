# getopts option parsing.
parse() {
  OPTIND=1
  while getopts "ab:c" opt; do
    case $opt in
      a) echo "flag a" ;;
      b) echo "b=$OPTARG" ;;
      c) echo "flag c" ;;
      \?) echo "invalid option" ;;
    esac
  done
  shift $((OPTIND - 1))
  echo "rest: $*"
}
parse -a -b value rest1 rest2
parse -ac -bX
parse -- -a
parse -z 2>/dev/null
parse
