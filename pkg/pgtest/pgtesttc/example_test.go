package pgtesttc_test

import (
	"context"
	"fmt"
	"log"

	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/poststack/poststack/pkg/pgtest"
	"github.com/poststack/poststack/pkg/pgtest/pgtesttc"
)

// Start runs the container and Close terminates it; in a test binary this goes in TestMain,
// and the tests call srv.New or srv.NewPool (see the package documentation).
func ExampleStart() {
	ctx := context.Background()
	srv, err := pgtesttc.Start(ctx, "postgres:16")
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close(ctx)

	db, err := srv.Database(ctx, pgtest.WithMigrations("testdata/migrations"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Drop(ctx)
	fmt.Println("a migrated database of its own:", db.URL)
}

// A suite that already runs its postgres container keeps doing so; FromContainer only makes
// the databases on it, and Close leaves the container to the suite.
func ExampleFromContainer() {
	ctx := context.Background()
	ctr, err := tcpostgres.Run(ctx, "postgres:16",
		tcpostgres.WithPassword("secret"),
		tcpostgres.BasicWaitStrategies(),
	)
	defer func() {
		if err := testcontainers.TerminateContainer(ctr); err != nil {
			log.Print(err)
		}
	}()
	if err != nil {
		log.Fatal(err)
	}

	srv, err := pgtesttc.FromContainer(ctx, ctr)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close(ctx)

	db, err := srv.Database(ctx, pgtest.WithMigrations("testdata/migrations"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Drop(ctx)
	fmt.Println("a migrated database of its own:", db.URL)
}
