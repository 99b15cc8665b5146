from sim.telegram import run

run()
