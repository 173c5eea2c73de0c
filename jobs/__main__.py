from jobs.runner import main

main()
