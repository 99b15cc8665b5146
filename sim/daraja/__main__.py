from sim.daraja import run

run()
