from rationalerm.cli import main

main()
