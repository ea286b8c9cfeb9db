from ci_checks.main import main

if __name__ == "__main__":
    raise SystemExit(main())
