from seq2seq.bench import main

main()
